#!/usr/bin/env bash
# Run the seeded differential property test (test/fuzz/fuzz.pl) for a set of
# seeds against the server that PGHOST / PGPORT / PGUSER point at.
#
#   FUZZ_SEEDS="1 2 3"          these seeds (spaces or commas)
#   FUZZ_COUNT=200 FUZZ_START=1 seeds FUZZ_START .. FUZZ_START+FUZZ_COUNT-1
#   (neither)                   the fixed seeds 1..10
#   FUZZ_OPS=M                  operations per seed (fuzz.pl's default otherwise)
#   FUZZ_DB=name                database (default rb_fuzz; created if missing)
#   FUZZ_SKIP=diff,freeze       triage only: fuzz.pl --skip (see fuzz.pl)
#
# Prints fuzz.pl's line for each seed, the failing seeds with the commands that
# replay them, and as its last line "N passed, N failed". Exits 1 if any seed
# failed.
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
		echo "0 passed, ${#seeds[@]} failed"
		exit 1
	fi
fi
if ! psql -X -q -d "$db" -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS rollback'; then
	echo "fuzz: CREATE EXTENSION rollback failed in $db" >&2
	echo "0 passed, ${#seeds[@]} failed"
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
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "fuzz: failing seeds: ${failed[*]}"
	for seed in "${failed[@]}"; do
		echo "  replay: perl test/fuzz/fuzz.pl --seed $seed${FUZZ_OPS:+ --ops $FUZZ_OPS}$([[ $db != rb_fuzz ]] && echo " --dbname $db")"
	done
fi
echo "$passed passed, ${#failed[@]} failed"
[[ ${#failed[@]} -eq 0 ]]
