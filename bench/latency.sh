#!/usr/bin/env bash
# bench/latency.sh: how long a bad migration stays in the database.  From
# the commit of a migration that breaks data to the commit of the worker's
# automatic revert, on a table of a million rows with 10,000 changed rows,
# over 20 runs: median, spread, and where the time goes.
#
#   bash bench/latency.sh
#
# Each run, in one client session: rollback.begin_migration('L<n>'), an
# UPDATE that sets a checked column to NULL on 10,000 rows spread over the
# table, rollback.end_migration(), COMMIT.  The clock starts when COMMIT
# returns to the client.  A second session LISTENs on rollback_events; the
# clock stops when the 'reverted' notification arrives, which the server
# sends only once the revert has committed.  Both clocks are the client's
# (one machine), so the figure is an upper bound of commit-to-commit.
#
# The breakdown comes from the server's own records: when the check ran
# (rollback.check_runs), how long the revert took (audit_log duration_ms).
# Every run is checked: the migration is 'reverted' and the table has no
# NULL left in the column.
#
# rollback.max_auto_reverts is raised for the run (the circuit breaker
# would stop the fourth automatic revert within an hour, as it should).
#
# Environment:
#   BENCH_LAT_ROWS  rows of the table (default 1000000)
#   BENCH_LAT_CHANGED  rows the bad migration changes (default 10000)
#   BENCH_LAT_RUNS  runs (default 20)
#   BENCH_LAT_PORT  port of the throwaway server (default 54406)
#   BENCH_LAT_OUT   where the server lives (default bench/out/latency)
#
# Not part of `make test`: figures depend on the machine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${BENCH_LAT_ROWS:-1000000}
CHANGED=${BENCH_LAT_CHANGED:-10000}
RUNS=${BENCH_LAT_RUNS:-20}
export RB_PORT=${BENCH_LAT_PORT:-54406}
export RB_TMP=${BENCH_LAT_OUT:-$ROOT/bench/out/latency}
# shellcheck source=../scripts/pgenv.sh
source "$ROOT/scripts/pgenv.sh"
rb_setup
trap pg_stop EXIT
pg_fresh

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

DB=rb_latency
q -d postgres -c "CREATE DATABASE $DB"
q -d postgres -c "ALTER SYSTEM SET rollback.max_auto_reverts = 1000" -c "SELECT pg_reload_conf()" >/dev/null
q -d "$DB" >/dev/null <<SQL
CREATE EXTENSION rollback;
SET rollback.auto_track_migrations = off;
CREATE SCHEMA app;
CREATE TABLE app.accounts (
	id bigint PRIMARY KEY,
	email text,
	balance numeric(12,2) NOT NULL,
	note text,
	updated_at timestamptz NOT NULL
);
INSERT INTO app.accounts
SELECT g, 'user' || g || '@example.com', (g % 100000) / 100.0, repeat('n', 40) || g,
	   '2026-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE app.accounts;
SELECT rollback.track('app.accounts');
SELECT rollback.check_no_new_nulls('app.accounts', 'email');
SQL
echo "table app.accounts: $ROWS rows, $(q -d "$DB" -c "SELECT pg_size_pretty(pg_table_size('app.accounts'))")"
echo "worker: pid $(q -d "$DB" -c "SELECT rollback._worker_pid()")"

RB_BENCH_ROWS=$ROWS RB_BENCH_CHANGED=$CHANGED RB_BENCH_RUNS=$RUNS RB_BENCH_DB=$DB perl - <<'PERL'
use strict;
use warnings;
use DBI;
use Time::HiRes qw(time);
use IO::Select;

my ($rows, $changed, $runs, $db) = @ENV{qw(RB_BENCH_ROWS RB_BENCH_CHANGED RB_BENCH_RUNS RB_BENCH_DB)};
my $dsn = "dbi:Pg:dbname=$db;host=$ENV{PGHOST};port=$ENV{PGPORT}";
my $mig = DBI->connect($dsn, 'postgres', '', { AutoCommit => 1, RaiseError => 1, PrintWarn => 0 });
my $lis = DBI->connect($dsn, 'postgres', '', { AutoCommit => 1, RaiseError => 1 });
$lis->do('LISTEN rollback_events');
my $sel = IO::Select->new($lis->{pg_socket});
my $step = int($rows / $changed);
my (@lat, @check, @revert);

for my $n (1 .. $runs) {
	my $label = "L$n";
	$mig->begin_work;
	$mig->do('SELECT rollback.begin_migration(?)', undef, $label);
	$mig->do("UPDATE app.accounts SET email = NULL WHERE id % $step = $n % $step");
	$mig->do('SELECT rollback.end_migration()');
	$mig->commit;
	my $t0 = time;
	my $got;
	while (!defined $got) {
		my $left = $t0 + 60 - time;
		die "run $n: no 'reverted' notification within 60 s\n" if $left <= 0;
		$sel->can_read($left);
		$lis->pg_ping;
		while (my $nt = $lis->pg_notifies) {
			my $p = $nt->[2];
			if ($p =~ /"event": "reverted"/ && $p =~ /"migration": "\Q$label\E"/) {
				$got = time;
				last;
			}
		}
	}
	my $ms = ($got - $t0) * 1000;
	my ($status, $nulls) = $mig->selectrow_array(
		"SELECT (SELECT status FROM rollback.migration WHERE version = ?),
		        (SELECT count(*) FROM app.accounts WHERE email IS NULL)", undef, $label);
	die "run $n: migration $label is $status, expected reverted\n" unless $status eq 'reverted';
	die "run $n: $nulls NULL emails left after the revert\n" if $nulls != 0;
	my ($check_ms, $revert_ms) = $mig->selectrow_array(
		"SELECT (SELECT extract(epoch FROM r.finished_at - r.started_at) * 1000 FROM rollback.check_runs r
		          JOIN rollback.migration m ON m.id = r.migration_id WHERE m.version = ? ORDER BY r.id DESC LIMIT 1),
		        (SELECT (a.detail->>'duration_ms')::float8 FROM rollback.audit_log a
		          JOIN rollback.migration m ON m.id = a.migration_id
		         WHERE m.version = ? AND a.action = 'revert')", undef, $label, $label);
	printf "run %2d: commit -> revert committed %7.1f ms (check %6.1f ms, revert %6.1f ms)\n",
		$n, $ms, $check_ms, $revert_ms;
	push @lat, $ms;
	push @check, $check_ms;
	push @revert, $revert_ms;
}

sub median { my @s = sort { $a <=> $b } @_; my $k = @s; return $k % 2 ? $s[($k - 1) / 2] : ($s[$k / 2 - 1] + $s[$k / 2]) / 2; }
sub pct { my ($p, @v) = @_; my @s = sort { $a <=> $b } @v; return $s[int($p * $#s + 0.5)]; }
my @s = sort { $a <=> $b } @lat;
printf "\n%d runs, %d rows, %d changed rows per bad migration\n", scalar(@lat), $rows, $changed;
printf "commit -> revert committed: median %.1f ms, min %.1f, p90 %.1f, max %.1f ms\n",
	median(@lat), $s[0], pct(0.9, @lat), $s[-1];
printf "  of which the check (no_new_nulls through rollback.diff): median %.1f ms\n", median(@check);
printf "  of which the revert itself (audit duration_ms): median %.1f ms\n", median(@revert);
printf "target: median under 1000 ms: %s\n", median(@lat) < 1000 ? 'met' : 'NOT met';
PERL
