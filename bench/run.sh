#!/usr/bin/env bash
# bench/run.sh: the benchmark of the rollback extension against baselines
# measured in the same run, on the same data, on a throwaway server of its
# own.  See bench/README.md for what each figure means.
#
#   bash bench/run.sh                 # full run (pgbench 30 s per run, medians of 3)
#   BENCH_QUICK=1 bash bench/run.sh   # quick try (5 s pgbench runs, fewer repetitions)
#
# Environment:
#   BENCH_PORT      server port (default 54403); the server listens on a unix
#                   socket only, in $BENCH_OUT/sock
#   BENCH_OUT       where output, socket and server live (default bench/out)
#   BENCH_PGDATA    data directory (default $BENCH_OUT/pgdata); it is created
#                   afresh on every run, so it must be absent, empty, or one
#                   this script made
#   BENCH_SECONDS   duration of each pgbench run (default 30; 5 when quick)
#   BENCH_REPS      pgbench runs per setup and mode, interleaved, median
#                   taken (default 3; 1 when quick)
#   BENCH_STMT_REPS repetitions of the single-statement UPDATE / INSERT
#                   figures (default 5; 1 when quick; TRUNCATE: at most 3)
#   BENCH_POINT_CALLS create_point calls per table size (default 20; 5 when quick)
#   BENCH_ROWS      rows of the big table (default 1000000)
#   BENCH_TEXTLEN   characters of text per row (default 44: ~120 MB with the index)
#   BENCH_RESTORE_CHECKPOINT=0  no CHECKPOINT between a change and the restore
#                   that undoes it (default 1: one there, the conservative case)
#   BENCH_QUIET_PCT before each measurement, wait until other processes on
#                   the machine use less than this % of its CPU (default 15;
#                   100 = never wait), and run a pgbench run again (up to
#                   BENCH_RETRIES times in all, default 3) when they used more
#                   than twice that during it
#   BENCH_QUIET_WAIT  seconds the whole run may spend waiting (default 120)
#   BENCH_SECTIONS  which sections to run (default "1 2 3 4 5"); the summary
#                   table is printed only when all of them ran
#   BENCH_SKIP_BUILD=1  do not run make / make install into the system
#   BENCH_PRIVATE=0 run the server on the system installation instead of a
#                   private copy of it in $BENCH_OUT/pg (see below)
#   BENCH_KEEP=1    keep the data directory at the end (it is removed otherwise)
#
# Runs as root (installs missing packages, `make install`, and runs the
# server as the postgres OS user) or as a user who can do without those.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=${BENCH_OUT:-$BENCH_DIR/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PGDATA_DIR=${BENCH_PGDATA:-$OUT/pgdata}
PORT=${BENCH_PORT:-54403}
SOCK=$OUT/sock
SERVER_LOG=$OUT/server.log
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
	SECS=${BENCH_SECONDS:-5}
	REPS=${BENCH_REPS:-1}
	STMT_REPS=${BENCH_STMT_REPS:-1}
	POINT_CALLS=${BENCH_POINT_CALLS:-5}
else
	SECS=${BENCH_SECONDS:-30}
	REPS=${BENCH_REPS:-3}
	STMT_REPS=${BENCH_STMT_REPS:-5}
	POINT_CALLS=${BENCH_POINT_CALLS:-20}
fi
ROWS=${BENCH_ROWS:-1000000}
TEXTLEN=${BENCH_TEXTLEN:-44}
PGBIN=/usr/lib/postgresql/15/bin
STAMP=$(date +%Y%m%d-%H%M%S)
RUNLOG=$OUT/run-$STAMP.log        # everything printed, plus psql output
TIMINGS=$OUT/timings-$STAMP.tsv   # every measured figure, one per line
SUMMARY=$OUT/summary-$STAMP.txt   # the final table

exec > >(tee -a "$RUNLOG") 2>&1

say() { printf '%s\n' "$*"; }
section() {
	if [[ -n ${MARK[section.time]:-} ]]; then
		say "  (during this section: other processes used $(other_cpu section)% of the machine's CPU; I/O wait $(iowait section)%)"
		unset 'MARK[section.time]'
	fi
	say ""
	say "=== $* ($(date +%T), load average $(cut -d' ' -f1-3 /proc/loadavg))"
}
declare -A MARK
die() {
	say "bench: $*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# Packages, build, install
# ---------------------------------------------------------------------------
section "packages"
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib postgresql-client-15
	build-essential make gcc)
missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	[[ $status == ii* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
	[[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}; run as root or install them"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
else
	say "all present: ${PACKAGES[*]}"
fi
[[ -x $PGBIN/initdb ]] || die "$PGBIN/initdb not found"

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
	section "build and install"
	make -C "$ROOT" -j"$(nproc)"
	make -C "$ROOT" install
fi

# A private copy of the PostgreSQL installation, with the extension just
# built installed into it (make install DESTDIR=...).  PostgreSQL finds its
# share and lib directories relative to its binaries, so the server runs on
# this copy: another `make install` into the system directories while the
# benchmark runs (other work on this machine) cannot change the library or
# the install script under it.  BENCH_PRIVATE=0 runs the system install.
if [[ ${BENCH_PRIVATE:-1} == 1 ]]; then
	section "private installation in $OUT/pg"
	rm -rf "$OUT/pg"
	mkdir -p "$OUT/pg/usr/lib/postgresql" "$OUT/pg/usr/share/postgresql"
	cp -a /usr/lib/postgresql/15 "$OUT/pg/usr/lib/postgresql/"
	cp -a /usr/share/postgresql/15 "$OUT/pg/usr/share/postgresql/"
	make -C "$ROOT" install DESTDIR="$OUT/pg" >"$OUT/pg-install.log" 2>&1 || {
		cat "$OUT/pg-install.log"
		die "make install DESTDIR=$OUT/pg failed"
	}
	PGBIN=$OUT/pg/usr/lib/postgresql/15/bin
	[[ $("$PGBIN/pg_config" --pkglibdir) == "$OUT/pg/usr/lib/postgresql/15/lib" ]] ||
		die "the private installation does not relocate ($("$PGBIN/pg_config" --pkglibdir))"
	say "extension installed in $("$PGBIN/pg_config" --pkglibdir) and $("$PGBIN/pg_config" --sharedir)/extension"
fi
export PATH=$PGBIN:$PATH

# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$OUT" && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGPASSWORD PGPASSFILE PGSSLMODE PGOPTIONS PGDATABASE
export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres PGOPTIONS='-c client_min_messages=warning'

section "server"
if [[ -e $PGDATA_DIR ]]; then
	if [[ -f $PGDATA_DIR/bench_run_sh ]]; then
		if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
			as_pg pg_ctl -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
		fi
		rm -rf "$PGDATA_DIR"
	elif [[ -n $(ls -A "$PGDATA_DIR") ]]; then
		die "$PGDATA_DIR exists and was not made by bench/run.sh; remove it or set BENCH_PGDATA"
	fi
fi
mkdir -p "$PGDATA_DIR" "$SOCK"
chmod 700 "$PGDATA_DIR" "$SOCK"
if [[ $(id -u) -eq 0 ]]; then
	getent passwd postgres >/dev/null || die "no postgres OS user (is postgresql-15 installed?)"
	chown postgres: "$OUT" "$SOCK" "$PGDATA_DIR"
	# the postgres user must be able to reach $OUT
	dir=$OUT
	while [[ $dir != / ]]; do
		if ! runuser -u postgres -- test -x "$dir"; then
			say "chmod o+x $dir (so that the postgres user can reach $OUT)"
			chmod o+x "$dir"
		fi
		dir=$(dirname "$dir")
	done
fi
as_pg initdb -D "$PGDATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
	>"$OUT/initdb.log" 2>&1 || {
	cat "$OUT/initdb.log"
	die "initdb failed"
}
as_pg touch "$PGDATA_DIR/bench_run_sh"
as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<EOF

# bench/run.sh
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCK'
shared_preload_libraries = 'rollback'
synchronous_commit = off
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
maintenance_work_mem = 256MB
autovacuum = off
jit = off
log_line_prefix = '%m [%p] '
EOF

stop_server() {
	if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
		as_pg pg_ctl -D "$PGDATA_DIR" -m fast -w -t 120 stop >/dev/null 2>&1 || true
		say "server stopped"
	fi
	if [[ ${BENCH_KEEP:-0} != 1 && -f $PGDATA_DIR/bench_run_sh ]]; then
		rm -rf "$PGDATA_DIR"
	fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

as_pg pg_ctl -D "$PGDATA_DIR" -l "$SERVER_LOG" -w -t 60 start >/dev/null || {
	tail -n 30 "$SERVER_LOG"
	die "the server did not start"
}
say "server up: port $PORT, socket $SOCK, data $PGDATA_DIR"

PSQL=(psql -X -v ON_ERROR_STOP=1 -q)

# The machine is not ours alone: measure how much CPU other processes take
# while we measure.  cpu_mark saves the busy CPU ticks of the machine and of
# our server (postmaster, its live children, and those it has reaped);
# other_cpu NAME [CLIENT_TICKS] prints the share of the machine's CPU capacity
# used since the mark by everything else (minus our client's ticks).
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
server_ticks() {
	local pm
	pm=$(head -n 1 "$PGDATA_DIR/postmaster.pid")
	{
		cat "/proc/$pm/stat"
		for c in $(ps -o pid= --ppid "$pm"); do cat "/proc/$c/stat" 2>/dev/null || true; done
	} | awk '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}
cpu_mark() { # cpu_mark NAME
	MARK[$1.machine]=$(machine_ticks)
	MARK[$1.server]=$(server_ticks)
	MARK[$1.iowait]=$(iowait_ticks)
	MARK[$1.time]=$(date +%s.%N)
}
other_cpu() { # other_cpu NAME [CLIENT_TICKS]
	local m s t
	m=$(machine_ticks)
	s=$(server_ticks)
	t=$(date +%s.%N)
	calc "(x = 100 * (($m - ${MARK[$1.machine]}) - ($s - ${MARK[$1.server]}) - ${2:-0}) / ($NCPU * $CLK_TCK * ($t - ${MARK[$1.time]}))) > 0 ? x : 0" %.0f
}
# iowait NAME: the share of the machine's CPU time spent waiting for I/O
# since cpu_mark NAME (a sign that the disk, shared or not, was the limit).
iowait_ticks() { awk '/^cpu / { print $6; exit }' /proc/stat; }
iowait() {
	calc "100 * ($(iowait_ticks) - ${MARK[$1.iowait]}) / ($NCPU * $CLK_TCK * ($(date +%s.%N) - ${MARK[$1.time]}))" %.0f
}

# wait_quiet: before a measurement, wait until other processes use less
# than BENCH_QUIET_PCT % of the CPU (probed over one second), within a
# budget of BENCH_QUIET_WAIT seconds of waiting for the whole run.
QUIET_PCT=${BENCH_QUIET_PCT:-15}
QUIET_BUDGET=${BENCH_QUIET_WAIT:-120}
QUIET_WAITED=0
wait_quiet() {
	local o start=$SECONDS
	((QUIET_PCT < 100)) || return 0
	while :; do
		cpu_mark probe
		sleep 1
		o=$(other_cpu probe)
		((o < QUIET_PCT)) && break
		if ((QUIET_WAITED + SECONDS - start >= QUIET_BUDGET)); then
			say "  (other processes take $o% of the CPU and the waiting budget is spent: measuring anyway)"
			break
		fi
	done
	QUIET_WAITED=$((QUIET_WAITED + SECONDS - start - 1))
}

# q DB SQL...: run each SQL (its own transaction; several statements in one
# SQL are one transaction), print the results unaligned, tuples only.
q() {
	local db=$1 args=()
	shift
	for sql in "$@"; do args+=(-c "$sql"); done
	"${PSQL[@]}" -At -d "$db" "${args[@]}"
}

# timed DB < script: run a psql script with \timing on.  In the script,
# `\echo @@name` starts recording: the times of every statement up to the
# next `\echo @@...` line are summed into figure `name` (`\echo @@` alone
# stops recording).  A query output line `V:name=value` records a value.
# Appends "name<TAB>value" lines to $TIMINGS and sets FIG[name].
declare -A FIG
timed() {
	local db=$1 tmp rc=0 name val
	wait_quiet
	tmp=$(mktemp)
	{
		echo '\timing on'
		cat
	} | "${PSQL[@]}" -At -d "$db" >"$tmp" 2>&1 || rc=$?
	cat "$tmp" >>"$RUNLOG.psql"
	if ((rc)); then
		tail -n 20 "$tmp"
		rm -f "$tmp"
		die "a psql script failed (full output in $RUNLOG.psql)"
	fi
	while IFS=$'\t' read -r name val; do
		FIG[$name]=$val
		printf '%s\t%s\n' "$name" "$val" >>"$TIMINGS"
	done < <(awk '
		/^@@/ { if (cur != "") print cur "\t" sum; cur = substr($0, 3); sum = 0; next }
		/^Time: [0-9.]+ ms/ { if (cur != "") sum += $2; next }
		/^V:[A-Za-z0-9_]+=/ { i = index($0, "="); print substr($0, 3, i - 3) "\t" substr($0, i + 1); next }
		END { if (cur != "") print cur "\t" sum }' "$tmp")
	rm -f "$tmp"
}

# median V...: the median of numbers (the lower middle one for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# fig_median PREFIX N: the median of FIG[PREFIX1..N].
fig_median() {
	local vals=() i
	for ((i = 1; i <= $2; i++)); do vals+=("${FIG[$1$i]}"); done
	median "${vals[@]}"
}
# calc EXPR: awk arithmetic, printed with the given format (default %.2f).
calc() { awk "BEGIN { printf(\"${2:-%.2f}\", ($1)) }"; }
ms() { calc "$1" "%.1f"; }        # ms, one decimal
sec() { calc "$1 / 1000" "%.2f"; } # ms -> s, two decimals

record() { # record NAME VALUE: a derived figure
	FIG[$1]=$2
	printf '%s\t%s\n' "$1" "$2" >>"$TIMINGS"
}

q postgres "SELECT 1" >/dev/null
PGVERSION=$(q postgres "SELECT version()")
say "$PGVERSION"
say "extension: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" status --porcelain -- src sql Makefile 2>/dev/null | grep -q . && echo ' + uncommitted changes in src/ sql/ (as built)')"
say "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -h | awk '/^Mem:/ { print $2 }') RAM"
say "settings: $(q postgres "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','synchronous_commit','max_wal_size','checkpoint_timeout','autovacuum','jit','wal_level','fsync','full_page_writes','shared_preload_libraries','work_mem')")"
say "pgbench: ${SECS} s per run, ${REPS} run(s) per setup and mode; statement figures: median of ${STMT_REPS}; create_point: median of ${POINT_CALLS} calls"

# new_db NAME: a fresh database with the extension and the bench helpers.
new_db() {
	q postgres "DROP DATABASE IF EXISTS $1" >/dev/null
	q postgres "CREATE DATABASE $1" >/dev/null
	q "$1" "CREATE EXTENSION rollback" >/dev/null
	"${PSQL[@]}" -d "$1" -f "$BENCH_DIR/sql/setup.sql" >/dev/null
}

# r_tables: the 1M-row table of sections 3 and 4, tracked (r_trk), and its
# untracked twin (r_plain), unless they exist.
r_tables() {
	if [[ $(q bench "SELECT to_regclass('r_trk') IS NULL") == t ]]; then
		q bench "SELECT bench_table('r_trk'); INSERT INTO r_trk SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN);
			SELECT bench_table('r_plain'); INSERT INTO r_plain SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN);
			SELECT rollback.track('r_trk')" >/dev/null
	fi
}

# want N: whether section N is to run (BENCH_SECTIONS, default all).
SECTIONS=" ${BENCH_SECTIONS:-1 2 3 4 5} "
want() { [[ $SECTIONS == *" $1 "* ]]; }

# ---------------------------------------------------------------------------
# 1. pgbench: untracked, tracked with a fresh point, audit trigger
# ---------------------------------------------------------------------------
if want 1; then
section "1. pgbench scale 10, 2 clients, 2 threads, ${SECS} s per run"
cpu_mark section
PGB_TABLES="ARRAY['pgbench_accounts','pgbench_branches','pgbench_tellers','pgbench_history']::regclass[]"

# One template, initialized and vacuumed once; every run gets a file copy
# of it, so each run starts from the very same pages.
new_db pgb_template
pgbench -i -s 10 -q pgb_template 2>&1 | tail -n 1
q pgb_template "VACUUM (FREEZE, ANALYZE)" >/dev/null

pgbench_once() { # pgbench_once SETUP MODE: sets TPS, OTHER, CAPTURED
	local setup=$1 mode=$2 flags=() client TIMEFORMAT='%U %S'
	[[ $mode == simple ]] && flags=(-N)
	q postgres "DROP DATABASE IF EXISTS pgb" >/dev/null
	q postgres "CREATE DATABASE pgb TEMPLATE pgb_template STRATEGY FILE_COPY" >/dev/null
	case $setup in
	tracked) q pgb "SELECT rollback.track(t) FROM unnest($PGB_TABLES) t" >/dev/null ;;
	audit) q pgb "SELECT audit(t) FROM unnest($PGB_TABLES) t" >/dev/null ;;
	esac
	q pgb "VACUUM ANALYZE" >/dev/null
	q pgb "CHECKPOINT" >/dev/null
	wait_quiet
	if [[ $setup == tracked ]]; then
		q pgb "SELECT rollback.create_point('pgbench_run', $PGB_TABLES)" >/dev/null
	fi
	cpu_mark run
	client=$({ time pgbench -n -c 2 -j 2 -T "$SECS" "${flags[@]}" pgb >"$OUT/pgbench.out" 2>&1; } 2>&1) ||
		{ cat "$OUT/pgbench.out"; die "pgbench $setup $mode failed"; }
	OTHER=$(other_cpu run "$(calc "(${client% *} + ${client#* }) * $CLK_TCK" %.0f)")
	IOWAIT=$(iowait run)
	cat "$OUT/pgbench.out" >>"$RUNLOG.psql"
	TPS=$(awk '/^tps = / { print $3; exit }' "$OUT/pgbench.out")
	[[ -n $TPS ]] || die "pgbench $setup $mode printed no tps (see $RUNLOG.psql)"
	CAPTURED=""
	if [[ $setup == tracked ]]; then
		CAPTURED=" (captured since the point: $(q pgb "SELECT rows_captured || ' images, ' || pg_size_pretty(store_bytes) FROM rollback.points WHERE name = 'pgbench_run'"))"
	elif [[ $setup == audit ]]; then
		CAPTURED=" (audit log: $(q pgb "SELECT count(*) || ' rows, ' || pg_size_pretty(pg_total_relation_size('audit_log')) FROM audit_log"))"
	fi
}

RETRIES=${BENCH_RETRIES:-3}
pgbench_run() { # pgbench_run SETUP MODE REP
	local setup=$1 mode=$2 rep=$3
	while :; do
		pgbench_once "$setup" "$mode"
		if ((OTHER > 2 * QUIET_PCT && RETRIES > 0 && QUIET_PCT < 100)); then
			RETRIES=$((RETRIES - 1))
			printf '  run %d  %-7s %-9s %10.1f tps  (other processes: %3s%% of the CPU: discarded, run again)\n' \
				"$rep" "$mode" "$setup" "$TPS" "$OTHER"
			continue
		fi
		break
	done
	record "pgb_${mode}_${setup}_$rep" "$TPS"
	record "pgb_${mode}_${setup}_${rep}_other_cpu" "$OTHER"
	printf '  run %d  %-7s %-9s %10.1f tps  (other processes: %3s%% of the CPU, I/O wait %3s%%)%s\n' \
		"$rep" "$mode" "$setup" "$TPS" "$OTHER" "$IOWAIT" "$CAPTURED"
}

for ((rep = 1; rep <= REPS; rep++)); do
	for mode in tpcb simple; do
		# rotate the order of the setups from one repetition to the next
		setups=(untracked tracked audit)
		for ((k = 0; k < 3; k++)); do
			pgbench_run "${setups[$(((k + rep - 1) % 3))]}" "$mode" "$rep"
		done
	done
done
q postgres "DROP DATABASE IF EXISTS pgb" >/dev/null
q postgres "DROP DATABASE IF EXISTS pgb_template" >/dev/null

for mode in tpcb simple; do
	for setup in untracked tracked audit; do
		record "pgb_${mode}_${setup}" "$(fig_median "pgb_${mode}_${setup}_" "$REPS")"
	done
	record "pgb_${mode}_ratio_tracked" "$(calc "${FIG[pgb_${mode}_tracked]} / ${FIG[pgb_${mode}_untracked]}" %.3f)"
	record "pgb_${mode}_ratio_audit" "$(calc "${FIG[pgb_${mode}_audit]} / ${FIG[pgb_${mode}_untracked]}" %.3f)"
	# paired: the median of the ratios within each repetition, whose runs
	# are minutes apart at most (robust to load that drifts over the run)
	for setup in tracked audit; do
		vals=()
		for ((rep = 1; rep <= REPS; rep++)); do
			vals+=("$(calc "${FIG[pgb_${mode}_${setup}_$rep]} / ${FIG[pgb_${mode}_untracked_$rep]}" %.3f)")
		done
		record "pgb_${mode}_pratio_$setup" "$(median "${vals[@]}")"
	done
done
say ""
printf '  %-22s %10s %10s %10s %15s %15s\n' "median tps" untracked tracked audit "tracked/untr." "audit/untr."
for mode in tpcb simple; do
	printf '  %-22s %10.1f %10.1f %10.1f %15.3f %15.3f\n' \
		"$([[ $mode == tpcb ]] && echo 'tpcb-like' || echo 'simple-update (-N)')" \
		"${FIG[pgb_${mode}_untracked]}" "${FIG[pgb_${mode}_tracked]}" "${FIG[pgb_${mode}_audit]}" \
		"${FIG[pgb_${mode}_ratio_tracked]}" "${FIG[pgb_${mode}_ratio_audit]}"
	printf '  %-22s %10s %10s %10s %15.3f %15.3f\n' "  paired (median of" "per-run" "ratios)" "" \
		"${FIG[pgb_${mode}_pratio_tracked]}" "${FIG[pgb_${mode}_pratio_audit]}"
done
fi

# ---------------------------------------------------------------------------
# 2. statements on the 1M-row table: UPDATE, INSERT, TRUNCATE
# ---------------------------------------------------------------------------
if want 2 || want 3 || want 4 || want 5; then
	new_db bench
fi

if want 2; then
section "2. UPDATE / INSERT / TRUNCATE on a ${ROWS}-row table: tracked (fresh point) vs untracked vs audit trigger"
cpu_mark section
for t in t_trk t_plain t_aud; do
	q bench "SELECT bench_table('$t'); INSERT INTO $t SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN)" >/dev/null
done
q bench "SELECT rollback.track('t_trk'); SELECT audit('t_aud')" >/dev/null
q bench "VACUUM ANALYZE t_trk, t_plain, t_aud" "CHECKPOINT" >/dev/null
record size_heap "$(q bench "SELECT pg_relation_size('t_plain')")"
record size_total "$(q bench "SELECT pg_total_relation_size('t_plain')")"
say "  table: $ROWS rows; heap $(q bench "SELECT pg_size_pretty(pg_relation_size('t_plain'))"), with its primary key index $(q bench "SELECT pg_size_pretty(pg_total_relation_size('t_plain'))") (pg_total_relation_size)"

UPD_ROWS=$((ROWS / 10))
for ((r = 1; r <= STMT_REPS; r++)); do
	# rotate the order from one repetition to the next
	order=(trk plain aud)
	script="SELECT rollback.create_point('upd_$r', ARRAY['t_trk'::regclass]);"$'\n'
	for ((k = 0; k < 3; k++)); do
		s=${order[$(((k + r - 1) % 3))]}
		script+="CHECKPOINT;"$'\n'"\\echo @@upd_${s}_$r"$'\n'
		script+="UPDATE t_$s SET a = a + 1, n = n + 1 WHERE id % 10 = 0;"$'\n'"\\echo @@"$'\n'
	done
	script+="SELECT 'V:upd_images_$r=' || rows_captured FROM rollback.points WHERE name = 'upd_$r';"$'\n'
	script+="VACUUM t_trk, t_plain, t_aud;"$'\n'
	timed bench <<<"$script"
	say "  UPDATE $UPD_ROWS rows, run $r: tracked $(ms "${FIG[upd_trk_$r]}") ms (${FIG[upd_images_$r]} images), untracked $(ms "${FIG[upd_plain_$r]}") ms, audit $(ms "${FIG[upd_aud_$r]}") ms"
done
for s in trk plain aud; do record "upd_$s" "$(fig_median "upd_${s}_" "$STMT_REPS")"; done

INS_ROWS=$((ROWS / 10))
for ((r = 1; r <= STMT_REPS; r++)); do
	order=(trk plain aud)
	lo=$((ROWS + (r - 1) * INS_ROWS + 1))
	hi=$((ROWS + r * INS_ROWS))
	script="SELECT rollback.create_point('ins_$r', ARRAY['t_trk'::regclass]);"$'\n'
	for ((k = 0; k < 3; k++)); do
		s=${order[$(((k + r - 1) % 3))]}
		script+="CHECKPOINT;"$'\n'"\\echo @@ins_${s}_$r"$'\n'
		script+="INSERT INTO t_$s SELECT * FROM bench_rows($lo, $hi, $TEXTLEN);"$'\n'"\\echo @@"$'\n'
	done
	timed bench <<<"$script"
	say "  INSERT $INS_ROWS rows, run $r: tracked $(ms "${FIG[ins_trk_$r]}") ms, untracked $(ms "${FIG[ins_plain_$r]}") ms, audit $(ms "${FIG[ins_aud_$r]}") ms"
done
for s in trk plain aud; do record "ins_$s" "$(fig_median "ins_${s}_" "$STMT_REPS")"; done

# Back to the 1M rows, then TRUNCATE with a fresh point.  Rows inserted
# after the latest point need no image, so this DELETE captures nothing.
# Each further repetition refills the three tables first (the audit
# trigger off while refilling) and starts from an empty version store and
# audit log.
q bench "DELETE FROM t_trk WHERE id > $ROWS" "DELETE FROM t_plain WHERE id > $ROWS" \
	"ALTER TABLE t_aud DISABLE TRIGGER audit_row" "DELETE FROM t_aud WHERE id > $ROWS" \
	"ALTER TABLE t_aud ENABLE TRIGGER audit_row" >/dev/null
TRUNC_REPS=$((STMT_REPS < 3 ? STMT_REPS : 3))
for ((r = 1; r <= TRUNC_REPS; r++)); do
	if ((r > 1)); then
		q bench "SELECT rollback.drop_point(name) FROM rollback.point" "TRUNCATE audit_log" \
			"ALTER TABLE t_aud DISABLE TRIGGER audit_row" \
			"INSERT INTO t_trk SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN)" \
			"INSERT INTO t_plain SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN)" \
			"INSERT INTO t_aud SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN)" \
			"ALTER TABLE t_aud ENABLE TRIGGER audit_row" "VACUUM" >/dev/null
	fi
	order=(trk plain aud)
	script="VACUUM ANALYZE t_trk, t_plain, t_aud;"$'\n'
	script+="SELECT 'V:trunc_rows_$r=' || count(*) FROM t_trk;"$'\n'
	script+="SELECT rollback.create_point('trunc_$r', ARRAY['t_trk'::regclass]);"$'\n'
	for ((k = 0; k < 3; k++)); do
		s=${order[$(((k + r - 1) % 3))]}
		script+="CHECKPOINT;"$'\n'"\\echo @@trunc_${s}_$r"$'\n'"TRUNCATE t_$s;"$'\n'"\\echo @@"$'\n'
	done
	script+="SELECT 'V:trunc_images_$r=' || count(*) FROM rollback._images(NULL::t_trk, 'trunc_$r');"$'\n'
	timed bench <<<"$script"
	say "  TRUNCATE of ${FIG[trunc_rows_$r]} rows, run $r: tracked $(ms "${FIG[trunc_trk_$r]}") ms (the point then reads ${FIG[trunc_images_$r]} images), untracked $(ms "${FIG[trunc_plain_$r]}") ms, audit $(ms "${FIG[trunc_aud_$r]}") ms"
done
for s in trk plain aud; do record "trunc_$s" "$(fig_median "trunc_${s}_" "$TRUNC_REPS")"; done

record upd_ratio "$(calc "${FIG[upd_trk]} / ${FIG[upd_plain]}")"
record upd_ratio_aud "$(calc "${FIG[upd_aud]} / ${FIG[upd_plain]}")"
record ins_ratio "$(calc "${FIG[ins_trk]} / ${FIG[ins_plain]}")"
record ins_ratio_aud "$(calc "${FIG[ins_aud]} / ${FIG[ins_plain]}")"
# paired: the median of the ratios within each repetition
for f in upd ins; do
	for s in trk aud; do
		vals=()
		for ((r = 1; r <= STMT_REPS; r++)); do vals+=("$(calc "${FIG[${f}_${s}_$r]} / ${FIG[${f}_plain_$r]}")"); done
		record "${f}_pratio_$s" "$(median "${vals[@]}")"
	done
done
say ""
printf '  %-28s %10s %10s %10s %15s %15s\n' "median ms" untracked tracked audit "tracked/untr." "audit/untr."
printf '  %-28s %10.1f %10.1f %10.1f %14.2fx %14.2fx\n' "UPDATE $UPD_ROWS of $ROWS rows" \
	"${FIG[upd_plain]}" "${FIG[upd_trk]}" "${FIG[upd_aud]}" "${FIG[upd_ratio]}" "${FIG[upd_ratio_aud]}"
printf '  %-28s %10s %10s %10s %14.2fx %14.2fx\n' "  paired (median of" "per-run" "ratios)" "" "${FIG[upd_pratio_trk]}" "${FIG[upd_pratio_aud]}"
printf '  %-28s %10.1f %10.1f %10.1f %14.2fx %14.2fx\n' "INSERT $INS_ROWS rows" \
	"${FIG[ins_plain]}" "${FIG[ins_trk]}" "${FIG[ins_aud]}" "${FIG[ins_ratio]}" "${FIG[ins_ratio_aud]}"
printf '  %-28s %10s %10s %10s %14.2fx %14.2fx\n' "  paired (median of" "per-run" "ratios)" "" "${FIG[ins_pratio_trk]}" "${FIG[ins_pratio_aud]}"
printf '  %-28s %10.1f %10.1f %10.1f\n' "TRUNCATE $ROWS rows" \
	"${FIG[trunc_plain]}" "${FIG[trunc_trk]}" "${FIG[trunc_aud]}"
q bench "DROP TABLE t_trk, t_plain, t_aud; TRUNCATE audit_log" >/dev/null
q bench "SELECT rollback.drop_point(name) FROM rollback.point" >/dev/null
fi

# ---------------------------------------------------------------------------
# 3. create_point on 10k and 1M rows vs CREATE TABLE AS copy
# ---------------------------------------------------------------------------
if want 3; then
section "3. rollback.create_point on 10k and ${ROWS} rows vs CREATE TABLE AS copy"
cpu_mark section
q bench "SELECT bench_table('c10k'); INSERT INTO c10k SELECT * FROM bench_rows(1, 10000, $TEXTLEN);
	SELECT rollback.track('c10k')" >/dev/null
r_tables
q bench "VACUUM ANALYZE c10k, r_trk, r_plain" "CHECKPOINT" >/dev/null
# Each call its own transaction, the point dropped right after (untimed),
# 10k and 1M interleaved.
script=""
for ((i = 1; i <= POINT_CALLS; i++)); do
	for s in c10k r_trk; do
		script+="\\echo @@cp_${s}_$i"$'\n'"SELECT rollback.create_point('cp_${s}_$i', ARRAY['$s'::regclass]);"$'\n'
		script+="\\echo @@"$'\n'"SELECT rollback.drop_point('cp_${s}_$i');"$'\n'
	done
done
CTAS_REPS=3
[[ $QUICK == 1 ]] && CTAS_REPS=1
for ((i = 1; i <= CTAS_REPS; i++)); do
	for s in c10k r_trk; do
		script+="CHECKPOINT;"$'\n'"\\echo @@ctas_${s}_$i"$'\n'"CREATE TABLE cp_copy AS SELECT * FROM $s;"$'\n'
		script+="\\echo @@"$'\n'"DROP TABLE cp_copy;"$'\n'
	done
done
timed bench <<<"$script"
for s in c10k r_trk; do
	record "cp_$s" "$(fig_median "cp_${s}_" "$POINT_CALLS")"
	record "ctas_$s" "$(fig_median "ctas_${s}_" "$CTAS_REPS")"
	vals=()
	for ((i = 1; i <= POINT_CALLS; i++)); do vals+=("${FIG[cp_${s}_$i]}"); done
	record "cp_${s}_min" "$(printf '%s\n' "${vals[@]}" | sort -g | head -n 1)"
	record "cp_${s}_max" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -n 1)"
done
printf '  %-24s %14s %14s %14s %16s\n' "" "create_point" "(min .. max)" "CTAS copy" "CTAS/point"
printf '  %-24s %11.2f ms %6.2f..%-6.2f %11.1f ms %15.0fx\n' "10k rows" "${FIG[cp_c10k]}" \
	"${FIG[cp_c10k_min]}" "${FIG[cp_c10k_max]}" "${FIG[ctas_c10k]}" "$(calc "${FIG[ctas_c10k]} / ${FIG[cp_c10k]}")"
printf '  %-24s %11.2f ms %6.2f..%-6.2f %11.1f ms %15.0fx\n' "$ROWS rows" "${FIG[cp_r_trk]}" \
	"${FIG[cp_r_trk_min]}" "${FIG[cp_r_trk_max]}" "${FIG[ctas_r_trk]}" "$(calc "${FIG[ctas_r_trk]} / ${FIG[cp_r_trk]}")"
q bench "DROP TABLE c10k" >/dev/null
fi

# ---------------------------------------------------------------------------
# 4. restore after k changed rows vs TRUNCATE + reload from a full copy
# ---------------------------------------------------------------------------
if want 4; then
section "4. rollback.restore after 1k / 10k / 100k / ${ROWS} changed rows vs TRUNCATE + INSERT from a copy"
cpu_mark section
r_tables
q bench "VACUUM ANALYZE r_trk, r_plain" "CHECKPOINT" >/dev/null
SCAN_REPS=3
timed bench <<EOF
SELECT count(*) FROM r_trk;
\echo @@scan_1
SELECT count(*) FROM r_trk;
\echo @@scan_2
SELECT count(*) FROM r_trk;
\echo @@scan_3
SELECT count(*) FROM r_trk;
\echo @@
EOF
record scan "$(fig_median scan_ $SCAN_REPS)"
say "  reference: a full scan of the table (SELECT count(*), cached) takes $(ms "${FIG[scan]}") ms"
SIZES=(1000 10000 100000 "$ROWS")
# A checkpoint between the change and the restore (and the naive reload)
# makes every page they touch cost a full-page image in the WAL: the
# conservative case, and the default.  BENCH_RESTORE_CHECKPOINT=0 leaves the
# change and the restore in the same checkpoint cycle.
RESTORE_CHECKPOINT="CHECKPOINT;"
[[ ${BENCH_RESTORE_CHECKPOINT:-1} == 1 ]] || RESTORE_CHECKPOINT="-- (no checkpoint)"
say "  checkpoint between the change and the restore: $([[ ${BENCH_RESTORE_CHECKPOINT:-1} == 1 ]] && echo yes || echo no)"
for k in "${SIZES[@]}"; do
	step=$((ROWS / k))
	timed bench <<EOF
-- the whole database: the stores too, where the images of the points
-- dropped after the previous size left dead rows
VACUUM ANALYZE;
CHECKPOINT;
SELECT rollback.create_point('rs_$k', ARRAY['r_trk'::regclass]);
SELECT 'V:digest_before_$k=' || bench_digest('r_trk');
\echo @@change_$k
UPDATE r_trk SET a = a + 1, n = n + 1, t = upper(t) WHERE id % $step = 0;
\echo @@
$RESTORE_CHECKPOINT
\echo @@newtids_$k
SELECT 'V:newtids_count_$k=' || cardinality(rollback._new_tids('r_trk', 'rs_$k'));
\echo @@
$RESTORE_CHECKPOINT
\echo @@restore_$k
SELECT 'V:restore_counts_$k=' || rows_deleted || '/' || rows_restored FROM rollback.restore('rs_$k', ARRAY['r_trk'::regclass]);
\echo @@
SELECT 'V:digest_after_$k=' || bench_digest('r_trk');
SELECT rollback.drop_point(name) FROM rollback.point;
-- the naive baseline, on the untracked copy: take a full copy at the
-- "point", change the same rows, put the copy back.
DROP TABLE IF EXISTS r_copy;
VACUUM ANALYZE r_plain;
CHECKPOINT;
\echo @@copy_$k
CREATE TABLE r_copy AS SELECT * FROM r_plain;
\echo @@
UPDATE r_plain SET a = a + 1, n = n + 1, t = upper(t) WHERE id % $step = 0;
$RESTORE_CHECKPOINT
\echo @@naive_$k
BEGIN;
TRUNCATE r_plain;
INSERT INTO r_plain SELECT * FROM r_copy;
COMMIT;
\echo @@
SELECT 'V:digest_naive_$k=' || bench_digest('r_plain');
DROP TABLE r_copy;
-- a floor rather than a baseline: the same rows put back by hand on the
-- untracked twin, by an UPDATE that undoes the change (md5 text is lower
-- case, so lower(upper(t)) = t).  No tool can know this statement; it is
-- what PostgreSQL itself takes to write those rows back.
VACUUM ANALYZE r_plain;
CHECKPOINT;
UPDATE r_plain SET a = a + 1, n = n + 1, t = upper(t) WHERE id % $step = 0;
$RESTORE_CHECKPOINT
\echo @@inverse_$k
UPDATE r_plain SET a = a - 1, n = n - 1, t = lower(t) WHERE id % $step = 0;
\echo @@
SELECT 'V:digest_inverse_$k=' || bench_digest('r_plain');
EOF
	ok="content matches the point"
	[[ ${FIG[digest_after_$k]} == "${FIG[digest_before_$k]}" ]] || ok="CONTENT DIFFERS FROM THE POINT: ${FIG[digest_before_$k]} vs ${FIG[digest_after_$k]}"
	[[ ${FIG[restore_counts_$k]} == "$k/$k" ]] || ok+="; UNEXPECTED COUNTS deleted/restored ${FIG[restore_counts_$k]} (expected $k/$k)"
	[[ ${FIG[digest_inverse_$k]} == "${FIG[digest_before_$k]}" ]] || ok+="; THE INVERSE UPDATE GAVE ${FIG[digest_inverse_$k]}"
	FIG[restore_ok_$k]=$ok
	say "  $k changed rows (UPDATE took $(ms "${FIG[change_$k]}") ms): restore $(ms "${FIG[restore_$k]}") ms" \
		"(of which finding the ${FIG[newtids_count_$k]} new rows, measured alone: $(ms "${FIG[newtids_$k]}") ms);" \
		"naive $(ms "${FIG[naive_$k]}") ms + copy $(ms "${FIG[copy_$k]}") ms; inverse UPDATE $(ms "${FIG[inverse_$k]}") ms;" \
		"deleted/restored ${FIG[restore_counts_$k]}; $ok"
done
# A full comparison with the untracked twin, which the naive baseline has
# put back to the same content.
record restore_mismatch "$(q bench "SELECT count(*) FROM ((TABLE r_trk EXCEPT ALL TABLE r_plain) UNION ALL (TABLE r_plain EXCEPT ALL TABLE r_trk)) d")"
say "  rows differing between the restored table and its untracked twin at the end: ${FIG[restore_mismatch]}"

# Where a restore's time goes, at 1k, 10k and 100k changed rows: the same steps
# as above on a fresh twin of the table, with each restore run under
# auto_explain (ANALYZE, nested statements).  Untimed: it shows the plans of
# the statements a restore runs, e.g. whether one of them scans the whole
# table.
say ""
say "  where the restore's time goes (the same steps on a fresh twin table, restores under auto_explain):"
q bench "SELECT bench_table('r_diag'); INSERT INTO r_diag SELECT * FROM bench_rows(1, $ROWS, $TEXTLEN);
	SELECT rollback.track('r_diag')" >/dev/null
for k in 1000 10000 100000; do
	step=$((ROWS / k))
	diagfile=$OUT/restore-plans-$k-$STAMP.txt
	"${PSQL[@]}" -At -d bench >"$diagfile" 2>&1 <<EOF || die "the restore diagnostic failed (see $diagfile)"
VACUUM ANALYZE;
CHECKPOINT;
SELECT rollback.create_point('diag_$k', ARRAY['r_diag'::regclass]);
UPDATE r_diag SET a = a + 1, n = n + 1, t = upper(t) WHERE id % $step = 0;
$RESTORE_CHECKPOINT
SELECT cardinality(rollback._new_tids('r_diag', 'diag_$k'));
$RESTORE_CHECKPOINT
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_wal = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT * FROM rollback.restore('diag_$k', ARRAY['r_diag'::regclass]);
RESET client_min_messages;
RESET auto_explain.log_min_duration;
SELECT rollback.drop_point(name) FROM rollback.point;
EOF
	# one line per statement of 0.5 ms or more: time, statement, scans, WAL
	awk -v k="$k" '
		function flush() {
			if (dur != "" && dur + 0 >= 0.5)
				printf "    %6d rows: %9.1f ms  %-62.62s  %s%s\n", k, dur, qt, (scans == "" ? "" : "[" substr(scans, 3) "] "), wal
			dur = ""; qt = ""; scans = ""; wal = ""
		}
		/duration: [0-9.]+ ms +plan:/ { flush(); match($0, /duration: [0-9.]+/); dur = substr($0, RSTART + 10, RLENGTH - 10); next }
		/^Query Text: / { qt = substr($0, 13); next }
		/(Seq|Tid|Tid Range|Index|Index Only|Bitmap Heap|Function) Scan (using [^ ]+ )?on / {
			match($0, /(Seq|Tid|Tid Range|Index|Index Only|Bitmap Heap|Function) Scan (using [^ ]+ )?on [^ ]+/)
			node = substr($0, RSTART, RLENGTH)
			if (match($0, /rows=[0-9]+ loops/)) node = node " " substr($0, RSTART, RLENGTH - 6)
			scans = scans ", " node
			next
		}
		/WAL: records=/ { if (wal == "") { sub(/^ */, ""); wal = $0 } next }
		END { flush() }' "$diagfile" | grep -v "rollback.point \|rollback.tracked_table\|point_table\|pg_sequence" || true
	# a whole-table scan: a Seq Scan of the table, or a scan of it whose
	# filter removes at least half of its rows
	FIG[restore_fullscan_$k]=$(awk -v half=$((ROWS / 2)) '
		/Seq Scan on r_diag / { full = 1 }
		/Scan .*on r_diag / { cur = 1; next }
		/->|Scan / { cur = 0 }
		cur && /Rows Removed by Filter:/ { if ($NF + 0 >= half) full = 1 }
		END { print full ? "yes" : "no" }' "$diagfile")
	if [[ ${FIG[restore_fullscan_$k]} == yes ]]; then
		say "    $k rows: a statement of the restore scans the whole table; plans in $diagfile"
	fi
done
q bench "DROP TABLE r_diag" >/dev/null
record copy "$(median "${FIG[copy_1000]}" "${FIG[copy_10000]}" "${FIG[copy_100000]}" "${FIG[copy_$ROWS]}")"
record naive "$(median "${FIG[naive_1000]}" "${FIG[naive_10000]}" "${FIG[naive_100000]}" "${FIG[naive_$ROWS]}")"
say ""
printf '  %-14s %12s %14s %12s %12s %14s %12s %16s\n' "changed rows" "restore ms" "find-new ms" "naive ms" "copy ms" \
	"naive/restore" "inverse ms" "inverse/restore"
for k in "${SIZES[@]}"; do
	printf '  %-14s %12.1f %14.1f %12.1f %12.1f %13.2fx %12.1f %15.2fx\n' "$k" "${FIG[restore_$k]}" "${FIG[newtids_$k]}" \
		"${FIG[naive_$k]}" "${FIG[copy_$k]}" "$(calc "${FIG[naive_$k]} / ${FIG[restore_$k]}")" \
		"${FIG[inverse_$k]}" "$(calc "${FIG[inverse_$k]} / ${FIG[restore_$k]}")"
done
q bench "DROP TABLE r_trk, r_plain" >/dev/null
fi

# ---------------------------------------------------------------------------
# 5. store bytes: 10k rows each updated 10 times after one point
# ---------------------------------------------------------------------------
if want 5; then
section "5. store size: 10k rows each updated 10 times after one point"
cpu_mark section
q bench "SELECT bench_table('h_trk'); INSERT INTO h_trk SELECT * FROM bench_rows(1, 10000, $TEXTLEN);
	SELECT bench_table('h_aud'); INSERT INTO h_aud SELECT * FROM bench_rows(1, 10000, $TEXTLEN);
	SELECT bench_table('h_plain'); INSERT INTO h_plain SELECT * FROM bench_rows(1, 10000, $TEXTLEN);
	SELECT rollback.track('h_trk'); SELECT audit('h_aud'); TRUNCATE audit_log" >/dev/null
q bench "VACUUM ANALYZE h_trk, h_aud, h_plain" "CHECKPOINT" >/dev/null
script="SELECT rollback.create_point('hot', ARRAY['h_trk'::regclass]);"$'\n'
for s in trk plain aud; do
	script+="CHECKPOINT;"$'\n'"\\echo @@hot_time_$s"$'\n'
	for ((i = 1; i <= 10; i++)); do script+="UPDATE h_$s SET a = a + 1, n = n + 1;"$'\n'; done
	script+="\\echo @@"$'\n'
done
script+="SELECT 'V:hot_images=' || rows_captured FROM rollback.points WHERE name = 'hot';"$'\n'
script+="SELECT 'V:hot_bytes=' || store_bytes FROM rollback.points WHERE name = 'hot';"$'\n'
script+="SELECT 'V:hot_heap_bytes=' || pg_relation_size(store) FROM rollback.tracked_table WHERE relid = 'h_trk'::regclass;"$'\n'
script+="SELECT 'V:aud_rows=' || count(*) FROM audit_log;"$'\n'
script+="SELECT 'V:aud_bytes=' || pg_total_relation_size('audit_log');"$'\n'
script+="SELECT 'V:table_bytes=' || pg_relation_size('h_plain');"$'\n'
timed bench <<<"$script"
say "  tracked: ${FIG[hot_images]} images, store $(calc "${FIG[hot_bytes]} / 1048576") MB ($(calc "${FIG[hot_bytes]} / 100000" %.1f) bytes per changed row, $(calc "${FIG[hot_bytes]} / ${FIG[hot_images]}" %.0f) per image)"
say "  audit trigger: ${FIG[aud_rows]} log rows, $(calc "${FIG[aud_bytes]} / 1048576") MB ($(calc "${FIG[aud_bytes]} / 100000" %.1f) bytes per changed row)"
say "  (the 10k-row table itself: $(calc "${FIG[table_bytes]} / 1048576") MB); time of the 10 x 10k updates: tracked $(ms "${FIG[hot_time_trk]}") ms, untracked $(ms "${FIG[hot_time_plain]}") ms, audit $(ms "${FIG[hot_time_aud]}") ms"
fi

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------
if [[ $SECTIONS != " 1 2 3 4 5 " ]]; then
	section "done (sections$SECTIONS only: no summary)"
	say "figures: $TIMINGS; raw output: $RUNLOG"
	exit 0
fi
section "summary"
met() { # met CONDITION(awk): yes / NO
	if awk "BEGIN { exit !($1) }"; then echo yes; else echo NO; fi
}
cp_same=$(met "${FIG[cp_r_trk]} < 5 && ${FIG[cp_c10k]} < 5 && ${FIG[cp_r_trk]} <= 1.5 * ${FIG[cp_c10k]} + 0.5")
restore_met=""
restore_rel=""
restore_rel_met=""
restore_inv=""
emaj_restore=(43 388 1080 10100)
i=0
for k in "${SIZES[@]}"; do
	restore_met+="${restore_met:+ / }$(met "${FIG[restore_$k]} * 3 <= ${emaj_restore[$i]}")"
	# E-Maj's figures come from another machine; the one baseline measured
	# both there and here is the naive reload (1.0 s there): compare the
	# restores in units of it, each size against the reload timed next to it.
	restore_rel+="${restore_rel:+ / }$(calc "${FIG[restore_$k]} / ${FIG[naive_$k]}" %.4f)"
	restore_rel_met+="${restore_rel_met:+ / }$(met "${FIG[restore_$k]} / ${FIG[naive_$k]} * 3 <= ${emaj_restore[$i]} / 1000")"
	restore_inv+="${restore_inv:+ / }$(ms "${FIG[inverse_$k]}") ms (restore/inverse $(calc "${FIG[restore_$k]} / ${FIG[inverse_$k]}"))"
	i=$((i + 1))
done
# "not dominated by a full scan" at 1k and 10k: finding the new rows takes
# less than half of the restore, and no statement the restore runs scans the
# whole table (the auto_explain run of section 4).
scan_met=$(met "${FIG[newtids_1000]} < 0.5 * ${FIG[restore_1000]} && ${FIG[newtids_10000]} < 0.5 * ${FIG[restore_10000]}")
[[ ${FIG[restore_fullscan_1000]} == no && ${FIG[restore_fullscan_10000]} == no ]] || scan_met=NO
naive_met=$(met "${FIG[restore_1000]} < ${FIG[naive_1000]} && ${FIG[restore_10000]} < ${FIG[naive_10000]} && ${FIG[restore_100000]} < ${FIG[naive_100000]}")

{
	say "rollback bench, $STAMP: $PGVERSION"
	say "$(nproc) CPUs, $(free -h | awk '/^Mem:/ { print $2 }') RAM; pgbench ${SECS} s x ${REPS}; table $ROWS rows, $(calc "${FIG[size_total]} / 1048576" %.0f) MB with index ($(calc "${FIG[size_heap]} / 1048576" %.0f) MB heap)"
	say ""
	say "| figure | E-Maj | target | rollback (this run) | audit trigger (this run) | met |"
	say "|---|---|---|---|---|---|"
	say "| pgbench tpcb-like TPS, tracked + fresh point / untracked | 0.69 | >= 0.90 | ${FIG[pgb_tpcb_ratio_tracked]} ($(calc "${FIG[pgb_tpcb_tracked]}" %.0f) / $(calc "${FIG[pgb_tpcb_untracked]}" %.0f) tps; paired ${FIG[pgb_tpcb_pratio_tracked]}) | ${FIG[pgb_tpcb_ratio_audit]} ($(calc "${FIG[pgb_tpcb_audit]}" %.0f) tps; paired ${FIG[pgb_tpcb_pratio_audit]}) | $(met "${FIG[pgb_tpcb_ratio_tracked]} >= 0.90 && ${FIG[pgb_tpcb_pratio_tracked]} >= 0.90") |"
	say "| pgbench simple-update (-N) TPS, same | 0.78 | >= 0.90 | ${FIG[pgb_simple_ratio_tracked]} ($(calc "${FIG[pgb_simple_tracked]}" %.0f) / $(calc "${FIG[pgb_simple_untracked]}" %.0f) tps; paired ${FIG[pgb_simple_pratio_tracked]}) | ${FIG[pgb_simple_ratio_audit]} ($(calc "${FIG[pgb_simple_audit]}" %.0f) tps; paired ${FIG[pgb_simple_pratio_audit]}) | $(met "${FIG[pgb_simple_ratio_tracked]} >= 0.90 && ${FIG[pgb_simple_pratio_tracked]} >= 0.90") |"
	say "| UPDATE of $UPD_ROWS rows of $ROWS, tracked / untracked time | 4.85x | <= 1.6x | ${FIG[upd_ratio]}x ($(ms "${FIG[upd_trk]}") / $(ms "${FIG[upd_plain]}") ms; paired ${FIG[upd_pratio_trk]}x) | ${FIG[upd_ratio_aud]}x ($(ms "${FIG[upd_aud]}") ms; paired ${FIG[upd_pratio_aud]}x) | $(met "${FIG[upd_ratio]} <= 1.6 && ${FIG[upd_pratio_trk]} <= 1.6") |"
	say "| INSERT of $INS_ROWS rows, tracked / untracked | 7.7x | <= 1.15x | ${FIG[ins_ratio]}x ($(ms "${FIG[ins_trk]}") / $(ms "${FIG[ins_plain]}") ms; paired ${FIG[ins_pratio_trk]}x) | ${FIG[ins_ratio_aud]}x ($(ms "${FIG[ins_aud]}") ms; paired ${FIG[ins_pratio_aud]}x) | $(met "${FIG[ins_ratio]} <= 1.15 && ${FIG[ins_pratio_trk]} <= 1.15") |"
	say "| TRUNCATE of $ROWS rows, tracked | 1.57 s | <= 1.57 s | $(sec "${FIG[trunc_trk]}") s (untracked $(ms "${FIG[trunc_plain]}") ms) | $(sec "${FIG[trunc_aud]}") s | $(met "${FIG[trunc_trk]} <= 1570") |"
	say "| recovery point on the $ROWS-row table (10k-row table) | 6-7 ms | < 5 ms, same at 10k and 1M | $(calc "${FIG[cp_r_trk]}") ms ($(calc "${FIG[cp_c10k]}") ms) | CTAS copy: $(ms "${FIG[ctas_r_trk]}") ms ($(ms "${FIG[ctas_c10k]}") ms) | $cp_same |"
	say "| restore after 1k / 10k / 100k / $ROWS changed rows | 43 ms / 388 ms / 1.08 s / 10.1 s | >= 3x faster each; 1k, 10k not dominated by a full scan | $(ms "${FIG[restore_1000]}") / $(ms "${FIG[restore_10000]}") / $(ms "${FIG[restore_100000]}") / $(ms "${FIG[restore_$ROWS]}") ms (finding new rows: $(ms "${FIG[newtids_1000]}") / $(ms "${FIG[newtids_10000]}") / $(ms "${FIG[newtids_100000]}") / $(ms "${FIG[newtids_$ROWS]}") ms; full scan $(ms "${FIG[scan]}") ms; a restore statement scans the whole table at 1k / 10k / 100k: ${FIG[restore_fullscan_1000]} / ${FIG[restore_fullscan_10000]} / ${FIG[restore_fullscan_100000]}) | | 3x faster: $restore_met; not dominated by a full scan: $scan_met |"
	say "| the same restores in units of the naive reload timed next to each (restore / naive) | 0.043 / 0.388 / 1.08 / 10.1 (naive 1.0 s) | >= 3x smaller each | $restore_rel | | $restore_rel_met |"
	say "| a floor, not a target: the same rows put back by an UPDATE that undoes the change, on the untracked twin | | | $restore_inv | | |"
	say "| store when 10k rows are each updated 10 times | 200k log rows, 34.5 MB | 10k images | ${FIG[hot_images]} images, $(calc "${FIG[hot_bytes]} / 1048576") MB | ${FIG[aud_rows]} log rows, $(calc "${FIG[aud_bytes]} / 1048576") MB | $(met "${FIG[hot_images]} == 10000") |"
	say "| restore by TRUNCATE + reload from a full copy (naive) | 1.0 s (copy 0.32 s) | beaten at every size up to 100k | naive $(sec "${FIG[naive]}") s (copy $(sec "${FIG[copy]}") s); restore/naive at 1k / 10k / 100k: $(calc "${FIG[restore_1000]} / ${FIG[naive]}" %.3f) / $(calc "${FIG[restore_10000]} / ${FIG[naive]}" %.3f) / $(calc "${FIG[restore_100000]} / ${FIG[naive]}" %.3f) | | $naive_met |"
	say ""
	others=()
	for key in "${!FIG[@]}"; do [[ $key == pgb_*_other_cpu ]] && others+=("${FIG[$key]}"); done
	say "other processes on the machine during the pgbench runs: $(printf '%s\n' "${others[@]}" | sort -g | head -n 1)% to $(printf '%s\n' "${others[@]}" | sort -g | tail -n 1)% of its CPU (median $(median "${others[@]}")%)"
	say "waited ${QUIET_WAITED} s in all for other processes to go below ${QUIET_PCT}% of the CPU; pgbench runs discarded and run again: $((${BENCH_RETRIES:-3} - RETRIES))"
	say "restore check: 1k: ${FIG[restore_ok_1000]}; 10k: ${FIG[restore_ok_10000]}; 100k: ${FIG[restore_ok_100000]}; $ROWS: ${FIG[restore_ok_$ROWS]}; rows differing from the untracked twin: ${FIG[restore_mismatch]}"
} | tee "$SUMMARY"
cp "$SUMMARY" "$OUT/summary.txt"
say ""
say "raw output: $RUNLOG (psql and pgbench output: $RUNLOG.psql); figures: $TIMINGS; summary: $SUMMARY"
