#!/usr/bin/env bash
# `make test`: install what is missing, build, install, start a throwaway
# server, run every suite, stop the server. Exits non-zero if any suite failed.
#
# Suites (each reported as passed, failed or "not run" when it has no tests):
#   regress    pg_regress over test/sql/*.sql, expected output in expected/
#   isolation  pg_isolation_regress over test/specs/*.spec, expected output in
#              expected/ (outputs in output_iso/)
#   pgtap      pg_prove over test/pgtap/*.sql, run in a fresh database rb_tap
#              where the runner has already done CREATE EXTENSION pgtap and
#              CREATE EXTENSION rollback (a file may repeat them with IF NOT
#              EXISTS; files should leave the database as they found it,
#              e.g. BEGIN ... ROLLBACK)
#   fuzz       test/fuzz/run.sh (seeds from FUZZ_SEEDS, default chosen by it)
#   e2e/NAME   each test/e2e/NAME.sh, one suite per script
#
# Every suite gets the environment of scripts/pgenv.sh (PGHOST, PGPORT, PGUSER,
# PGDATABASE, RB_ROOT, RB_TMP, RB_PGDATA, ...) and may source it to use
# pg_start / pg_stop / as_pg; the server is restarted between suites if one
# left it stopped.
#
# Environment: RB_PORT, RB_TMP, RB_PRELOAD (see scripts/pgenv.sh), FUZZ_SEEDS.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/pgenv.sh
rb_setup

passed=()
failed=()
not_run=()

header() {
	echo
	echo "======================================================================"
	echo "== suite: $1"
	echo "======================================================================"
}

# run_suite NAME CMD...: run CMD, record the outcome. A failing suite does not
# stop the run.
run_suite() {
	local name=$1
	shift
	local rc=0
	if ! pg_ensure; then
		failed+=("$name")
		echo "-- $name: FAILED (the server would not start)"
		return 0
	fi
	"$@" || rc=$?
	if [[ $rc -eq 0 ]]; then
		passed+=("$name")
		echo "-- $name: passed"
	else
		failed+=("$name")
		echo "-- $name: FAILED (exit $rc)"
	fi
}

skip_suite() {
	not_run+=("$1")
	echo "-- $1: not run ($2)"
}

# The connection options for pg_regress and pg_isolation_regress (they honor
# PGHOST/PGPORT too, but say it explicitly).
REGRESS_CONN="--host=$PGHOST --port=$PGPORT --user=postgres"

suite_regress() {
	# PGXS `installcheck` runs REGRESS then ISOLATION in one recipe (a REGRESS
	# failure would skip ISOLATION), so run each on its own by emptying the other.
	rm -f regression.diffs regression.out
	if make installcheck ISOLATION= EXTRA_REGRESS_OPTS="$REGRESS_CONN"; then
		return 0
	fi
	if [[ -f regression.diffs ]]; then
		echo "---- regression.diffs"
		cat regression.diffs
	fi
	return 1
}

suite_isolation() {
	# PG 15's pg_isolation_regress looks for expected output in
	# <outputdir>/expected/ then <inputdir>/expected/, i.e. output_iso/expected/
	# and test/expected/, never ./expected/. Point output_iso/expected at ours.
	mkdir -p output_iso
	rm -f output_iso/regression.diffs output_iso/regression.out
	if [[ ! -L output_iso/expected ]]; then
		rm -rf output_iso/expected
		ln -s ../expected output_iso/expected
	fi
	if make installcheck REGRESS= EXTRA_REGRESS_OPTS="$REGRESS_CONN"; then
		return 0
	fi
	if [[ -f output_iso/regression.diffs ]]; then
		echo "---- output_iso/regression.diffs"
		cat output_iso/regression.diffs
	fi
	return 1
}

suite_pgtap() {
	psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS rb_tap' -c 'CREATE DATABASE rb_tap' || return 1
	psql -X -q -v ON_ERROR_STOP=1 -d rb_tap \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION rollback' || return 1
	pg_prove --nocolor --failures --comments \
		--host "$PGHOST" --port "$PGPORT" --username postgres --dbname rb_tap \
		--ext .sql "${pgtap_files[@]}"
}

shopt -s nullglob
sql_files=(test/sql/*.sql)
spec_files=(test/specs/*.spec)
pgtap_files=(test/pgtap/*.sql)
e2e_files=(test/e2e/*.sh)
shopt -u nullglob

header regress
if [[ ${#sql_files[@]} -gt 0 ]]; then
	run_suite regress suite_regress
else
	skip_suite regress "no test/sql/*.sql"
fi

header isolation
if [[ ${#spec_files[@]} -gt 0 ]]; then
	run_suite isolation suite_isolation
else
	skip_suite isolation "no test/specs/*.spec"
fi

header pgtap
if [[ ${#pgtap_files[@]} -gt 0 ]]; then
	run_suite pgtap suite_pgtap
else
	skip_suite pgtap "no test/pgtap/*.sql"
fi

header fuzz
if [[ -f test/fuzz/run.sh ]]; then
	run_suite fuzz bash test/fuzz/run.sh
else
	skip_suite fuzz "no test/fuzz/run.sh"
fi

if [[ ${#e2e_files[@]} -gt 0 ]]; then
	for f in "${e2e_files[@]}"; do
		name="e2e/$(basename "$f" .sh)"
		header "$name"
		run_suite "$name" bash "$f"
	done
else
	header e2e
	skip_suite e2e "no test/e2e/*.sh"
fi

pg_stop
echo
echo "======================================================================"
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "failed:  ${failed[*]}"
	# A crashed backend explains many failures at once: show it.
	if grep -E 'terminated by signal|PANIC|TRAP:' "$RB_LOG" >/dev/null 2>&1; then
		echo "server log ($RB_LOG) reports:"
		grep -E 'terminated by signal|PANIC|TRAP:' "$RB_LOG" | head -n 20
	fi
fi
if [[ ${#passed[@]} -gt 0 ]]; then echo "passed:  ${passed[*]}"; fi
if [[ ${#not_run[@]} -gt 0 ]]; then echo "not run: ${not_run[*]}"; fi
if [[ ${#passed[@]} -eq 0 && ${#failed[@]} -eq 0 ]]; then
	echo "no suite ran: that is a failure, not a pass"
fi
echo "${#passed[@]} passed, ${#failed[@]} failed"

if [[ ${#failed[@]} -gt 0 || ${#passed[@]} -eq 0 ]]; then
	exit 1
fi
exit 0
