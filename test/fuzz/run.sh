#!/usr/bin/env bash
# Run the seeded differential property tests against the server that PGHOST /
# PGPORT / PGUSER point at: test/fuzz/fuzz.pl (points and restores) and
# test/fuzz/fuzz_ddl.pl (migrations with DDL, and their reverts), each for a
# set of seeds.
#
#   FUZZ_SEEDS="1 2 3"          fuzz.pl: these seeds (spaces or commas)
#   FUZZ_COUNT=200 FUZZ_START=1 fuzz.pl: seeds FUZZ_START .. FUZZ_START+FUZZ_COUNT-1
#   (neither)                   fuzz.pl: the fixed seeds 1..10
#   FUZZ_OPS=M                  fuzz.pl: operations per seed (its default otherwise)
#   FUZZ_DB=name                fuzz.pl: database (default rb_fuzz; created if missing)
#   FUZZ_SKIP=diff,freeze       triage only: fuzz.pl --skip (see fuzz.pl)
#
#   FUZZ_DDL_SEEDS="1 2 3"      fuzz_ddl.pl: these seeds (spaces or commas; "" or
#                               "none" runs none)
#   FUZZ_DDL_COUNT=100 FUZZ_DDL_START=1
#                               fuzz_ddl.pl: seeds FUZZ_DDL_START .. +FUZZ_DDL_COUNT-1
#   (neither)                   fuzz_ddl.pl: the fixed seeds 1..20
#   FUZZ_DDL_MIGRATIONS=M       fuzz_ddl.pl: migrations per seed (its default otherwise)
#   FUZZ_DDL_DB=name            fuzz_ddl.pl: database (default rb_fuzz_ddl; DROPPED and
#                               created anew for every seed)
#   FUZZ_DDL_AVOID=bug1,bug2    triage only: fuzz_ddl.pl --avoid (known bugs, see
#                               fuzz_ddl.pl)
#
# The default set (10 seeds of fuzz.pl, 20 of fuzz_ddl.pl) takes about two
# minutes on 2 cores.
# Prints each seed's line ("seed N: ..." for fuzz.pl, "ddl seed N: ..." for
# fuzz_ddl.pl), the failing seeds with the commands that replay them, and as
# its last line "N passed, N failed", counting the seeds of both. Exits 1 if
# any seed failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
db=${FUZZ_DB:-rb_fuzz}

if ! perl -MDBI -MDBD::Pg -e 1 2>/dev/null; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "fuzz: installing libdbd-pg-perl"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q libdbd-pg-perl >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libdbd-pg-perl >/dev/null; }
	fi
	if ! perl -MDBI -MDBD::Pg -e 1 2>/dev/null; then
		echo "fuzz: Perl DBD::Pg is missing (apt-get install libdbd-pg-perl)" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
fi

if [[ -n "${FUZZ_SEEDS:-}" ]]; then
	read -r -a seeds <<<"${FUZZ_SEEDS//,/ }"
elif [[ -n "${FUZZ_COUNT:-}" ]]; then
	start=${FUZZ_START:-1}
	mapfile -t seeds < <(seq "$start" $((start + FUZZ_COUNT - 1)))
else
	seeds=(1 2 3 4 5 6 7 8 9 10)
fi

if [[ -n "${FUZZ_DDL_SEEDS+set}" ]]; then
	if [[ "$FUZZ_DDL_SEEDS" == none ]]; then
		ddl_seeds=()
	else
		read -r -a ddl_seeds <<<"${FUZZ_DDL_SEEDS//,/ }"
	fi
elif [[ -n "${FUZZ_DDL_COUNT:-}" ]]; then
	ddl_start=${FUZZ_DDL_START:-1}
	mapfile -t ddl_seeds < <(seq "$ddl_start" $((ddl_start + FUZZ_DDL_COUNT - 1)))
else
	ddl_seeds=(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20)
fi
ddl_db=${FUZZ_DDL_DB:-rb_fuzz_ddl}
ddl_args=()
if [[ -n "${FUZZ_DDL_MIGRATIONS:-}" ]]; then
	ddl_args=(--migrations "$FUZZ_DDL_MIGRATIONS")
fi
if [[ $ddl_db != rb_fuzz_ddl ]]; then
	ddl_args+=(--dbname "$ddl_db")
fi
if [[ -n "${FUZZ_DDL_AVOID:-}" ]]; then
	ddl_args+=(--avoid "$FUZZ_DDL_AVOID")
fi
total=$((${#seeds[@]} + ${#ddl_seeds[@]}))

ops_arg=()
if [[ -n "${FUZZ_OPS:-}" ]]; then
	ops_arg=(--ops "$FUZZ_OPS")
fi
if [[ -n "${FUZZ_SKIP:-}" ]]; then
	ops_arg+=(--skip "$FUZZ_SKIP")
fi

# the database, with the extension
if [[ -z $(psql -X -d postgres -Atc "SELECT 1 FROM pg_catalog.pg_database WHERE datname = '$db'") ]]; then
	if ! psql -X -q -d postgres -c "CREATE DATABASE \"$db\""; then
		echo "fuzz: cannot create database $db" >&2
		echo "0 passed, $total failed"
		exit 1
	fi
fi
if ! psql -X -q -d "$db" -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS rollback'; then
	echo "fuzz: CREATE EXTENSION rollback failed in $db" >&2
	echo "0 passed, $total failed"
	exit 1
fi

echo "fuzz: ${#seeds[@]} seeds against database $db${FUZZ_OPS:+, $FUZZ_OPS operations each}${FUZZ_SKIP:+, skipping $FUZZ_SKIP}"
passed=0
failed=()
start_time=$SECONDS
for seed in "${seeds[@]}"; do
	# run from the repository root so that the replay commands it prints work as shown
	if (cd "$root" && perl test/fuzz/fuzz.pl --seed "$seed" --dbname "$db" "${ops_arg[@]}"); then
		passed=$((passed + 1))
	else
		failed+=("$seed")
	fi
done

echo "fuzz: $((SECONDS - start_time)) s"

# migrations with DDL: fuzz_ddl.pl makes its own database for every seed
ddl_failed=()
if [[ ${#ddl_seeds[@]} -gt 0 ]]; then
	echo "fuzz: ${#ddl_seeds[@]} DDL seeds against database $ddl_db${FUZZ_DDL_MIGRATIONS:+, $FUZZ_DDL_MIGRATIONS migrations each}${FUZZ_DDL_AVOID:+, avoiding $FUZZ_DDL_AVOID}"
	ddl_start_time=$SECONDS
	for seed in "${ddl_seeds[@]}"; do
		if (cd "$root" && perl test/fuzz/fuzz_ddl.pl --seed "$seed" "${ddl_args[@]}"); then
			passed=$((passed + 1))
		else
			ddl_failed+=("$seed")
		fi
	done
	echo "fuzz: DDL $((SECONDS - ddl_start_time)) s"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
	echo "fuzz: failing seeds: ${failed[*]}"
	for seed in "${failed[@]}"; do
		echo "  replay: perl test/fuzz/fuzz.pl --seed $seed${FUZZ_OPS:+ --ops $FUZZ_OPS}$([[ $db != rb_fuzz ]] && echo " --dbname $db")"
	done
fi
if [[ ${#ddl_failed[@]} -gt 0 ]]; then
	echo "fuzz: failing DDL seeds: ${ddl_failed[*]}"
	for seed in "${ddl_failed[@]}"; do
		echo "  replay: perl test/fuzz/fuzz_ddl.pl --seed $seed${ddl_args[*]:+ ${ddl_args[*]}} --log /tmp/fuzz_ddl_$seed.sql"
	done
fi
nfailed=$((${#failed[@]} + ${#ddl_failed[@]}))
echo "$passed passed, $nfailed failed"
[[ $nfailed -eq 0 ]]
