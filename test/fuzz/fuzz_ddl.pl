#!/usr/bin/perl
#
# fuzz_ddl.pl: seeded differential property test of migrations with DDL.
#
#   perl test/fuzz/fuzz_ddl.pl --seed N [--migrations M] [--dbname D] [--log FILE] [--keep] [--verbose] [--avoid LIST]
#
# Connects through libpq's environment (PGHOST, PGPORT, PGUSER).  Database D
# (default rb_fuzz_ddl) is dropped and created anew for every seed, so that
# no migration of an earlier run is "the last one applied": never point it
# at a database you need.  In schema `fd` it creates random tables (with and
# without primary keys; int, bigint, numeric, text with TOASTed values over
# 8 kB, jsonb, timestamptz, boolean columns with NULLs; serial and identity
# columns; a parent/child pair linked by a foreign key; indexes), a view, a
# sequence, a function and an enum type; schema `fd_x` is there for SET
# SCHEMA.  Both are tracked (rollback.track_schema) and the tables filled.
#
# Then M random migrations run: explicit ones (begin_migration ...
# end_migration, in one transaction or over several transactions and
# autocommit statements) and auto-tracked ones (DDL in a transaction, no
# begin_migration: labelled auto:<xid>); a few are rolled back instead of
# committed, which must leave nothing.  Each mixes random DDL of every kind
# of docs/migrations.md's table (columns: ADD with constant and volatile
# defaults, identity, serial and generated; DROP, RENAME, ALTER TYPE,
# SET/DROP DEFAULT, SET/DROP NOT NULL; constraints: CHECK, UNIQUE, PRIMARY
# KEY, FOREIGN KEY, NOT VALID; indexes; tables, views (and CREATE OR
# REPLACE), sequences, functions; RENAME, SET SCHEMA, OWNER, COMMENT,
# GRANT, REVOKE) with DML (INSERT, UPDATE, DELETE, TRUNCATE, backfills);
# some statements fail on purpose (duplicates, NULLs, irreversible DDL
# refused by rollback.irreversible_ddl = error) inside savepoints.  Between
# migrations other sessions' writes (autocommit DML) happen.
#
# Before each migration and each revert the state is taken: pg_dump
# --schema-only of fd and fd_x, normalized (comments, \restrict and SET
# lines left out; TOC entries compared as a sorted set; column lines of
# CREATE TABLE sorted, since a dropped column comes back at the end of the
# column list, a documented limit), every table's rows (md5 of to_jsonb of
# each row: columns by name, not position) and every sequence's state.
# Reverts (rollback.revert_migration of the last one, by name or default;
# rollback.revert_to of an older one; a dry run first, which must change
# nothing; one inside a transaction that is rolled back, which must change
# nothing; the revert of a revert) are each compared with the state taken
# before what they revert; at the end every migration left is reverted and
# the state must be the one before the first.
#
# Documented limits it does not generate: an index or constraint dropped
# (also implicitly, by DROP COLUMN, ALTER COLUMN TYPE or CASCADE) after one
# of its columns was renamed in the same migration; materialized views;
# partitioned tables.
#
# --avoid LIST (comma-separated) leaves out combinations that hit known,
# not yet fixed bugs, so that the rest can be tested past them (see %AVOID);
# the default run avoids nothing.
#
# The generator draws from its own PRNG (xorshift64*, in FuzzCommon.pm with
# what else fuzz.pl shares), never from Perl's rand() or hash order, so a seed
# replays exactly.  --log FILE writes every statement it sends, with values
# inlined, as a script psql can run (from any database: it reconnects to D
# itself).
#
# Prints one line per seed: "ddl seed N: migrations X, statements Y,
# reverts Z, mismatches W".  Exits 1 on any mismatch or unexpected SQL error.

use strict;
use warnings;
no warnings "portable";
use utf8;
use FindBin;
use lib $FindBin::Bin;
use FuzzCommon qw(!mismatch);		# mismatch: our own, which notes it in the --log script too

my $DEFAULT_MIGRATIONS = 10;
my ($MIGRATIONS, $AVOID) = ($DEFAULT_MIGRATIONS, '');
parse_options('perl test/fuzz/fuzz_ddl.pl --seed N [--migrations M] [--dbname D] [--log FILE] [--keep] [--verbose] [--avoid LIST]',
	'migrations=i' => \$MIGRATIONS,
	'avoid=s'      => \$AVOID,		# known bugs to steer around (see %AVOID)
);
usage() unless defined $SEED && $SEED >= 0 && $MIGRATIONS >= 1;
# --avoid: leave out a combination that hits a known bug.  The random stream
# stays the same where it can, so a seed takes mostly the same path.
#   bug1  CREATE OR REPLACE VIEW that adds a column is refused as irreversible:
#         the view is replaced with another filter only
#   bug2  identity columns: DROP COLUMN of one is refused as irreversible, and
#         the revert of ADD COLUMN ... AS IDENTITY is flagged irreversible: no
#         identity column is dropped or added (serial instead)
#   bug3  a transaction that called begin_migration and is rolled back leaves
#         the session in the migration: explicit migrations are not rolled
#         back (auto-tracked ones are)
#   bug4  the revert of DROP TABLE of a table with a serial column fails
#         (its sequence is looked up by its old name): such tables are not
#         dropped
#   bug5  the revert of DROP COLUMN of a serial column fails (its sequence,
#         dropped with it, is not re-created): serial columns are not dropped,
#         nor added (the revert of the revert would drop one)
#   bug6  a view created over a column that an earlier migration added (or
#         changed) blocks the earlier one's revert (the view, held, still
#         depends on the column): views are created over other views only
#   bug7  revert_to over several migrations that kept the same table's content
#         loads more than one content back (duplicate keys, doubled rows)
#   bug8  reverting, one by one, two migrations that kept the same table's
#         content loses the values of columns the newer revert brought back
#         (bug7 and bug8: a table's content is kept by one applied migration
#         at most: no DROP COLUMN, ALTER TYPE or rewriting ADD COLUMN on it in
#         another)
#   bug9  the revert of SET SCHEMA of a table with a serial column fails (its
#         sequence is looked up by its old name): such tables stay put
# All nine are fixed (commits 128d2c7, 51bfff1, 47cc8f3); their
# --avoid entries stay so that logs of older runs can be replayed the same way.
my %KNOWN_BUGS = (
	bug1 => 'CREATE OR REPLACE VIEW adding a column refused as irreversible',
	bug2 => 'identity column: DROP COLUMN refused, revert of ADD COLUMN flagged irreversible',
	bug3 => 'session left in a migration when the transaction of begin_migration rolls back',
	bug4 => 'revert of DROP TABLE fails for a table with a serial column',
	bug5 => 'revert of DROP COLUMN of a serial column fails',
	bug6 => 'a view held by a revert blocks the revert of the migration that added its column',
	bug7 => 'revert_to over several migrations that kept a table\'s content loads it more than once',
	bug8 => 'sequential reverts of migrations that kept a table\'s content lose column values',
	bug9 => 'revert of SET SCHEMA fails for a table with a serial column',
);
my %AVOID = map { $_ => 1 } grep { length } split /,/, $AVOID;
for (sort keys %AVOID) { die "unknown --avoid $_ (known: " . join(', ', sort keys %KNOWN_BUGS) . ")\n" unless $KNOWN_BUGS{$_}; }
$DBNAME //= 'rb_fuzz_ddl';

$SEEDNAME = "ddl seed $SEED";
$REPLAY = "perl test/fuzz/fuzz_ddl.pl --seed $SEED" . ($MIGRATIONS != $DEFAULT_MIGRATIONS ? " --migrations $MIGRATIONS" : '')
	. ($DBNAME ne 'rb_fuzz_ddl' ? " --dbname $DBNAME" : '') . ($AVOID ne '' ? " --avoid $AVOID" : '');

######################################################################
# Database access (FuzzCommon's: every statement goes through sql_do /
# sql_rows, which log it and report errors)

my ($n_migrations, $n_reverts, $n_checks) = (0, 0, 0);
our $n_stmts = 0;		# statements of migrations (local()ized for the ones that are not)

my %AUTOVAR;			# xid of an auto-tracked migration => psql variable that holds it in a replay

# the labels of auto-tracked migrations (auto:<xid>) become psql variables
# in the --log script, since a replay has other xids
$log_line = sub
{
	my ($sql) = @_;
	$sql =~ s/auto:(\d+)\b/$AUTOVAR{$1} ? "auto:' || :'$AUTOVAR{$1}' || '" : "auto:$1"/ge if %AUTOVAR;
	return "$sql;";
};

# a comment in the --log script (what the test checks there)
sub logcomment
{
	my ($c) = @_;
	print STDERR "-- $c\n" if $VERBOSE;
	print $LOG "-- $c\n" if $LOG;
}

# Rows of a catalog query the generator reads: not logged (a replay does
# not need them), errors are fatal
sub cat_rows
{
	my ($sql, $binds) = @_;
	my $r = $dbh->selectall_arrayref($sql, undef, @{ $binds // [] });
	if (!defined $r || $dbh->err)
	{
		sql_error($sql, $binds);
		die "fatal\n";
	}
	return $r;
}

# Drop database D and create it again, with the extension (and the role the
# GRANTs go to); connect to it.
sub fresh_db
{
	my $p = dbi_connect('postgres')
		or do { print "ERROR $SEEDNAME: cannot connect to database postgres: $DBI::errstr\n"; exit 1; };
	my $qdb = $p->quote_identifier($DBNAME);
	if ($LOG)
	{
		print $LOG "\\connect postgres\nDROP DATABASE IF EXISTS $qdb WITH (FORCE);\nCREATE DATABASE $qdb;\n"
			. "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fd_role') THEN CREATE ROLE fd_role; END IF; END\$\$;\n";
	}
	for my $s ("SET client_min_messages = warning", "DROP DATABASE IF EXISTS $qdb WITH (FORCE)", "CREATE DATABASE $qdb",
			   "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fd_role') THEN CREATE ROLE fd_role; END IF; END\$\$")
	{
		defined $p->do($s) or do { print "ERROR $SEEDNAME: $s: ", $p->errstr, "\n"; exit 1; };
	}
	$p->disconnect;
	connect_db();
	sql_do('CREATE EXTENSION rollback');
}

# connect to database D, with fixed settings (a \connect in the --log script)
sub connect_db
{
	print $LOG "\\connect $DBNAME\n" if $LOG;
	$dbh = connect_session($DBNAME);
}

######################################################################
# The state: normalized schema dump, rows, sequences

my $PG_DUMP;

# pg_dump of the same major version as the server: the one on PATH, else
# the PostgreSQL 15 one
sub find_pg_dump
{
	for my $d (split /:/, $ENV{PATH} // '')
	{
		return "$d/pg_dump" if -x "$d/pg_dump";
	}
	return '/usr/lib/postgresql/15/bin/pg_dump';
}

# pg_dump --schema-only of fd and fd_x, as a sorted list of TOC entries:
# the "-- Name: ...; Type: ...; Schema: ...; Owner: ..." line of each and
# its statements, without comments, blank lines, \restrict and SET lines;
# the column lines of CREATE TABLE sorted (a dropped column comes back at
# the end of the column list) and their trailing commas cut.
sub dump_schema
{
	$PG_DUMP //= find_pg_dump();
	my $cmd = "'$PG_DUMP' --schema-only --schema=fd --schema=fd_x --dbname=" . quotemeta($DBNAME) . " 2>&1";
	my $txt = `$cmd`;
	if ($? != 0)
	{
		$n_errors++;
		print "ERROR $SEEDNAME ($phase): pg_dump failed: ", short($txt, 500), "\n  replay: $REPLAY\n";
		die "fatal\n";
	}
	my @entries;
	for my $chunk (split /^-- (?=Name: )/m, $txt)
	{
		next unless $chunk =~ /^Name: /;
		my @lines = split /\n/, $chunk;
		my $head = shift @lines;
		my @body = grep { $_ ne '' && !/^--/ && !/^\\(un)?restrict\b/ && !/^SET / && !/^SELECT pg_catalog\.set_config/ } @lines;
		my $body = join("\n", @body);
		$body =~ s{^(CREATE (?:UNLOGGED )?TABLE \S+ \(\n)(.*?)(\n\))}{$1 . join("\n", sort map { s/,$//r } split /\n/, $2) . $3}gmse;
		push @entries, "$head\n$body";
	}
	return [sort @entries];
}

# the tables of fd and fd_x, as the catalog lists them now
sub state_tables
{
	return map { $_->[0] } @{ cat_rows("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
									   . " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
									   . " WHERE n.nspname IN ('fd', 'fd_x') AND c.relkind IN ('r', 'p') ORDER BY 1") };
}

# Everything a revert must bring back: { dump => [entries], rows => { table
# => { md5 => count } }, sample => { md5 => row text }, seqs => { seq =>
# 'last_value/is_called' } }.  Rows as to_jsonb: by column name.
sub take_state
{
	my %st = (dump => dump_schema(), rows => {}, sample => {}, seqs => {});
	for my $t (state_tables())
	{
		my %h;
		for my $r (@{ cat_rows("SELECT pg_catalog.md5(j), pg_catalog.left(j, 200) FROM (SELECT pg_catalog.to_jsonb(fd_row_)::text AS j FROM $t fd_row_) s") })
		{
			$h{ $r->[0] }++;
			$st{sample}{ $r->[0] } = $r->[1];
		}
		$st{rows}{$t} = \%h;
	}
	# a sequence no table owns is not set back (docs/limits.md): a migration
	# that draws from it leaves a gap, as a rolled-back transaction does;
	# only its presence is compared
	my $seqs = cat_rows("SELECT format('%I.%I', n.nspname, c.relname),"
						. " EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
						. "  AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i'))"
						. " FROM pg_catalog.pg_class c"
						. " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
						. " WHERE n.nspname IN ('fd', 'fd_x') AND c.relkind = 'S' ORDER BY 1");
	for my $row (@$seqs)
	{
		my ($s, $owned) = @$row;
		if (!$owned || $owned eq 'f')
		{
			$st{seqs}{$s} = 'present';
			next;
		}
		# the value nextval would return (last_value 1, is_called and last_value
		# 2, not called, are the same state)
		my $r = cat_rows("SELECT CASE WHEN s.is_called THEN s.last_value + q.seqincrement ELSE s.last_value END FROM $s s, pg_catalog.pg_sequence q"
						 . " WHERE q.seqrelid = '$s'::pg_catalog.regclass");
		$st{seqs}{$s} = "next $r->[0][0]";
	}
	return \%st;
}

# report a mismatch (counted: the seed fails), and note it in the --log script
sub mismatch
{
	my ($what) = @_;
	FuzzCommon::mismatch(@_);
	logcomment("MISMATCH: $what");
}

# Compare the state now with an expected one; a mismatch lists what differs
# (the first few TOC entries, tables, rows and sequences).  $noseq: sequence
# values are not compared (after a transaction that called nextval rolled
# back: PostgreSQL does not undo nextval)
sub check_state
{
	my ($what, $want, $noseq) = @_;
	my $got = take_state();
	$n_checks++;
	logcomment("check: $what");
	my @d;
	# schema: entries only on one side
	my (%w, %g);
	$w{$_}++ for @{ $want->{dump} };
	$g{$_}++ for @{ $got->{dump} };
	my @wo = grep { ($g{$_} // 0) < $w{$_} } sort keys %w;
	my @go = grep { ($w{$_} // 0) < $g{$_} } sort keys %g;
	push @d, map { "schema, expected only: " . short($_ =~ s/\n/ | /gr, 400) } @wo[0 .. ($#wo < 5 ? $#wo : 5)];
	push @d, map { "schema, actual only:   " . short($_ =~ s/\n/ | /gr, 400) } @go[0 .. ($#go < 5 ? $#go : 5)];
	# rows
	my %tabs = map { $_ => 1 } (keys %{ $want->{rows} }, keys %{ $got->{rows} });
	for my $t (sort keys %tabs)
	{
		my ($wr, $gr) = ($want->{rows}{$t}, $got->{rows}{$t});
		if (!$wr || !$gr) { push @d, "table $t: " . ($wr ? 'missing' : 'not expected'); next; }
		my @e = grep { ($gr->{$_} // 0) < $wr->{$_} } sort keys %$wr;
		my @a = grep { ($wr->{$_} // 0) < $gr->{$_} } sort keys %$gr;
		next unless @e || @a;
		my ($ne, $na) = (0, 0);
		$ne += $_ for values %$wr;
		$na += $_ for values %$gr;
		push @d, "table $t: expected $ne rows, got $na: " . scalar(@e) . " only expected, " . scalar(@a) . " only actual";
		push @d, map { "  expected only: " . short($want->{sample}{$_}, 200) } @e[0 .. ($#e < 2 ? $#e : 2)];
		push @d, map { "  actual only:   " . short($got->{sample}{$_}, 200) } @a[0 .. ($#a < 2 ? $#a : 2)];
	}
	# sequences (not after a transaction rolled back: nextval is not undone)
	my %seqs = map { $_ => 1 } (keys %{ $want->{seqs} }, keys %{ $got->{seqs} });
	for my $s (sort keys %seqs)
	{
		my ($ws, $gs) = ($want->{seqs}{$s} // 'absent', $got->{seqs}{$s} // 'absent');
		push @d, "sequence $s: expected $ws, got $gs" if $ws ne $gs && !$noseq;
	}
	mismatch($what, @d) if @d;
	return !@d;
}

######################################################################
# Values.  Each generator returns the value as the text PostgreSQL reads
# (undef for NULL), for a placeholder.

my @CHARS = (('a' .. 'z'), ('A' .. 'Z'), ('0' .. '9'), ' ', ' ', "'", '"', '\\', "\n", ',', '{', '}', '(', ')', '$', "\x{e9}", "\x{6f22}");
my $uniq = 1000;		# values of columns that must stay unique

# a random string of n characters
sub rstr { my ($n) = @_; return rchars(\@CHARS, $n); }

# a value for a column of type $type (format_type's spelling); $unique: a
# value no other row has
sub gen_val
{
	my ($type, $nullable, $unique) = @_;
	return undef if $nullable && !$unique && chance(0.2);
	if ($type =~ /^(integer|bigint|smallint)$/)
	{
		return ++$uniq if $unique || chance(0.5);
		return $type eq 'smallint' ? rrange(-300, 300) : rrange(-100000, 100000);
	}
	if ($type =~ /^numeric/)
	{
		return ++$uniq . '.' . rint(100) if $unique;
		return rrange(-99999, 99999) . '.' . sprintf('%02d', rint(100));
	}
	if ($type =~ /^(text|character varying)/)
	{
		return 'u' . ++$uniq if $unique;
		return pick_w([60, sub { rstr(rrange(0, 30)) }], [25, sub { md5chain(rrange(8200, 20000)) }],
					  [15, sub { 'ab' x rrange(3000, 6000) }])->();
	}
	if ($type eq 'jsonb')
	{
		return pick('{}', '[]', 'null', '{"a": 1}', '{"k": "' . md5chain(rrange(10, 40)) . '", "n": [1, 2, null]}', rrange(-50, 50));
	}
	if ($type eq 'timestamp with time zone')
	{
		return pick('infinity', '-infinity') if chance(0.05);
		my @g = gmtime(rrange(0, 2000000000));
		return sprintf('%04d-%02d-%02d %02d:%02d:%02d+00', $g[5] + 1900, $g[4] + 1, $g[3], $g[2], $g[1], $g[0]);
	}
	if ($type eq 'boolean') { return pick('t', 'f'); }
	if ($type eq 'double precision') { return rrange(-99999, 99999) . '.5'; }
	return undef;
}

# an expression that changes the value of column c of type $type (for
# UPDATE and backfills); undef where there is none
sub change_expr
{
	my ($c, $type) = @_;
	return pick("$c + 1", "$c / 2", "-$c") if $type =~ /^(integer|bigint|smallint)$/;
	return pick("$c + 1", "round($c / 3, 2)") if $type =~ /^numeric/;
	return pick("$c || 'u'", "left($c, 5)", "upper($c)", "CASE WHEN length($c) < 9000 THEN repeat($c, 3) ELSE $c END") if $type =~ /^(text|character varying)/;
	return pick("$c || '{\"u\": 1}'::jsonb", "jsonb_build_array($c)") if $type eq 'jsonb';
	return "$c + interval '1 day'" if $type eq 'timestamp with time zone';
	return "NOT $c" if $type eq 'boolean';
	return "$c * 2" if $type eq 'double precision';
	return undef;
}

######################################################################
# The catalog, read by the generator: what there is now (migrations and
# reverts change it, so nothing is modelled on our side)

# tables of fd and fd_x: [ { q (qualified name), oid, nsp, name } ]
sub cat_tables
{
	return map { { q => $_->[0], oid => $_->[1], nsp => $_->[2], name => $_->[3] } }
		@{ cat_rows("SELECT format('%I.%I', n.nspname, c.relname), c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"
					. " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
					. " WHERE n.nspname IN ('fd', 'fd_x') AND c.relkind = 'r' ORDER BY 1") };
}

# relations of one kind (v views, S sequences not owned by a column, i
# indexes that no constraint owns): [ { q, oid, nsp, name } ]
sub cat_rels
{
	my ($kind) = @_;
	my $extra = $kind eq 'S' ? " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
		. " AND d.objid = c.oid AND d.deptype IN ('a', 'i'))"
		: $kind eq 'i' ? " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = c.oid AND k.contype IN ('p', 'u', 'x'))" : '';
	return map { { q => $_->[0], oid => $_->[1], nsp => $_->[2], name => $_->[3] } }
		@{ cat_rows("SELECT format('%I.%I', n.nspname, c.relname), c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"
					. " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
					. " WHERE n.nspname IN ('fd', 'fd_x') AND c.relkind = \$1$extra ORDER BY 1", [$kind]) };
}

# columns of a table: [ { name, type, notnull, hasdef, identity, generated, num, pk, uniq, deps, fk, serial } ]
# deps: views or generated columns depend on it (ALTER TYPE refuses it)
sub cat_cols
{
	my ($t) = @_;
	return map { { name => $_->[0], type => $_->[1], notnull => $_->[2], hasdef => $_->[3], identity => $_->[4],
				   generated => $_->[5], num => $_->[6], pk => $_->[7], uniq => $_->[8], deps => $_->[9], fk => $_->[10], serial => $_->[11] } }
		@{ cat_rows("SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,"
					. " a.attidentity <> '', a.attgenerated <> '', a.attnum,"
					. " EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = a.attrelid AND k.contype = 'p' AND a.attnum = ANY (k.conkey)),"
					. " EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = a.attrelid AND k.contype IN ('p', 'u') AND a.attnum = ANY (k.conkey)),"
					. " EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
					. "   AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum"
					. "   AND (d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass OR (d.objid = a.attrelid AND d.objsubid <> 0)"
					# a generated column's expression (its pg_attrdef row, on 15)
					. "        OR (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.deptype = 'n')"
					. "        OR d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass"
					. "           AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid AND k.contype = 'f'))),"
					. " EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = a.attrelid AND k.contype = 'f' AND a.attnum = ANY (k.conkey)),"
					. " a.attidentity = '' AND pg_catalog.pg_get_serial_sequence(a.attrelid::pg_catalog.regclass::text, a.attname) IS NOT NULL"
					. " FROM pg_catalog.pg_attribute a WHERE a.attrelid = \$1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [$t->{oid}]) };
}

# constraints of a table: [ { name, type (c u p f), oid, cols => [attnums of
# this table and, for a foreign key, "r<relid>:<attnum>" of the referenced one] } ]
sub cat_cons
{
	my ($t) = @_;
	return map { { name => $_->[0], type => $_->[1], oid => $_->[2], cols => [split /,/, $_->[3] // ''] } }
		@{ cat_rows("SELECT k.conname, k.contype, k.oid, concat_ws(',', array_to_string(k.conkey, ','),"
					. " (SELECT string_agg(k.confrelid || ':' || x, ',') FROM unnest(k.confkey) x)) FROM pg_catalog.pg_constraint k"
					. " WHERE k.conrelid = \$1 AND k.contype IN ('c', 'u', 'p', 'f') ORDER BY 1", [$t->{oid}]) };
}

# functions of fd and fd_x: [ { q (name with argument types), name, nsp, oid } ]
sub cat_funcs
{
	return map { { q => $_->[0], name => $_->[1], nsp => $_->[2], oid => $_->[3] } }
		@{ cat_rows("SELECT p.oid::pg_catalog.regprocedure::text, p.proname, n.nspname, p.oid FROM pg_catalog.pg_proc p"
					. " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('fd', 'fd_x') ORDER BY 1") };
}

######################################################################
# The documented limit of renames: an index or constraint dropped after one
# of its columns was renamed in the same migration is re-created with the
# later name, which fails.  The generator remembers the columns it renamed
# in the running migration and leaves such drops out.

my %renamed;			# "relid:attnum" => 1, for the running migration

# whether dropping an index or constraint whose columns are @cols (attnums of
# table $relid, or "r<relid>:<attnum>") would hit the rename limit
sub hits_rename
{
	my ($relid, @cols) = @_;
	for (@cols)
	{
		my $k = /:/ ? $_ : "$relid:$_";
		return 1 if $renamed{$k};
	}
	return 0;
}

# whether a table has a column renamed in the running migration
sub table_renamed_cols
{
	my ($relid) = @_;
	return grep { /^$relid:/ } keys %renamed;
}

# columns of an index (attnums, from pg_depend: expressions too)
sub index_cols
{
	my ($oid) = @_;
	return map { $_->[0] } @{ cat_rows("SELECT d.refobjsubid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
									   . " AND d.objid = \$1 AND d.refobjsubid > 0 ORDER BY 1", [$oid]) };
}

# the relation an index belongs to
sub index_table { my ($oid) = @_; return cat_rows('SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = $1', [$oid])->[0][0]; }

######################################################################
# Statements of a migration.  Each op_* picks its objects from the catalog,
# runs one statement or a few, and returns 1, or 0 when there was nothing
# to run it on.  Errors a random statement may meet on the data
# (duplicates, NULLs, values a conversion refuses, dependents without
# CASCADE) are expected: the statement is undone by its savepoint.

my @DATA_ERRS = qw(23502 23505 23503 23514 22P02 22003 22001 22007 22008 54000 2BP01 42804 42883 42P16 42830 42P10);
my $objn = 0;			# suffix of the names of new objects
my $mig_rename_any = 0;	# a column was renamed in the running migration

# a new object name: prefix and a number never used before
# a name no relation, constraint or function of fd / fd_x has (the set-up
# names its tables t1, t2, ...)
sub newname
{
	my ($p) = @_;
	my $name;
	do { $name = $p . ++$objn; }
	while (cat_rows("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
					. "  WHERE c.relname = \$1 AND n.nspname IN ('fd', 'fd_x'))"
					. " OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conname = \$1)"
					. " OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = \$1)", [$name])->[0][0]);
	return $name;
}

# run a statement of a migration (counted)
sub mig_do
{
	my ($sql, $binds, $allow) = @_;
	$n_stmts++;
	return sql_do($sql, $binds, $allow // \@DATA_ERRS);
}

my %kept;				# relid => 1: tables whose content the running migration keeps
my @stack;			# applied migrations we may revert, oldest first: { v, before (state), kept }

# whether a statement that keeps the table's content (DROP COLUMN, ALTER
# TYPE, a rewriting ADD COLUMN) is left out: --avoid bug7 / bug8 and an
# applied migration kept it already
sub content_blocked
{
	my ($t) = @_;
	return 0 unless $AVOID{bug7} || $AVOID{bug8};
	return scalar grep { $_->{kept}{ $t->{oid} } } @stack;
}

# a random table of fd/fd_x (undef if there is none)
sub any_table { return pick(cat_tables()); }

# Tables whose columns were renamed in the running migration, and tables
# linked to them by a foreign key: DROP COLUMN, ALTER TYPE and DROP TABLE
# there would drop indexes, constraints or views along (the rename limit)
sub rename_blocked
{
	my ($t) = @_;
	return 0 unless $mig_rename_any;
	return 1 if table_renamed_cols($t->{oid});
	my $linked = cat_rows("SELECT DISTINCT CASE WHEN conrelid = \$1 THEN confrelid ELSE conrelid END FROM pg_catalog.pg_constraint"
						  . " WHERE contype = 'f' AND (conrelid = \$1 OR confrelid = \$1)", [$t->{oid}]);
	return scalar grep { table_renamed_cols($_->[0]) } @$linked;
}

# whether CASCADE may be used (not after a rename in the same migration:
# the dependents it drops would be re-created with the later names)
sub cascade_ok { return !$mig_rename_any; }

# a simple type for a new column
sub new_col_type { return pick('integer', 'bigint', 'text', 'numeric(12,2)', 'jsonb', 'timestamp with time zone', 'boolean'); }

# a constant of a type, as SQL
sub const_of
{
	my ($type) = @_;
	return pick('0', '7', '-3') if $type =~ /^(integer|bigint)/;
	return pick('1.50', '0') if $type =~ /^numeric/;
	return pick("'x'", "''", "'dflt'") if $type eq 'text';
	return pick("'{}'", "'{\"d\": 1}'") if $type eq 'jsonb';
	return "'2020-01-01 00:00:00+00'" if $type =~ /^timestamp/;
	return pick('true', 'false') if $type eq 'boolean';
	return 'NULL';
}

# ADD COLUMN: plain, constant default (maybe NOT NULL), volatile default,
# identity, serial, generated; sometimes a backfill
sub op_add_column
{
	my $t = any_table() or return 0;
	my $c = newname('c');
	my $kind = pick_w([25, 'plain'], [25, 'const'], [15, 'volatile'], [15, 'identity'], [10, 'serial'], [10, 'generated']);
	my $type = new_col_type();
	my $def;
	$kind = 'serial' if $kind eq 'identity' && $AVOID{bug2};
	$kind = 'plain' if $kind eq 'serial' && $AVOID{bug5};
	$kind = 'plain' if $kind =~ /^(volatile|identity|serial|generated)$/ && content_blocked($t);
	$kept{ $t->{oid} } = 1 if $kind =~ /^(volatile|identity|serial|generated)$/;
	if ($kind eq 'plain') { $def = $type; }
	if ($kind eq 'const') { $def = "$type DEFAULT " . const_of($type) . (chance(0.4) ? ' NOT NULL' : ''); }
	if ($kind eq 'volatile')
	{
		my $seq = pick(cat_rels('S'));
		$def = pick_w([40, "integer DEFAULT (random() * 0)::integer + 3"], [30, "text DEFAULT left(md5((random() * 0)::text), 8)"],
					  [30, $seq ? "bigint DEFAULT nextval('$seq->{q}')" : "integer DEFAULT (random() * 0)::integer"]);
	}
	if ($kind eq 'identity') { $def = pick('integer', 'bigint') . ' GENERATED ' . pick('ALWAYS', 'BY DEFAULT') . ' AS IDENTITY'; }
	if ($kind eq 'serial') { $def = pick('serial', 'bigserial'); }
	if ($kind eq 'generated')
	{
		my @src = grep { !$_->{generated} && $_->{type} =~ /^(integer|bigint|text)$/ } cat_cols($t);
		my $s = pick(@src);
		return 0 unless $s;
		$def = $s->{type} eq 'text' ? "integer GENERATED ALWAYS AS (length($s->{name})) STORED"
			: "bigint GENERATED ALWAYS AS ($s->{name}::bigint * 2) STORED";
	}
	mig_do("ALTER TABLE $t->{q} ADD COLUMN $c $def") or return 1;
	if (($kind eq 'plain' || $kind eq 'const') && chance(0.5))
	{
		my $e = pick_w([50, const_of($type)], [50, change_expr_any($t, $type)]);
		mig_do("UPDATE $t->{q} SET $c = $e" . (chance(0.5) ? " WHERE (hashtext(ctid::text) & 3) <> 0" : ''));
	}
	return 1;
}

# a backfill expression of a type from another column of the table
sub change_expr_any
{
	my ($t, $type) = @_;
	my @c = grep { !$_->{generated} } cat_cols($t);
	my $s = pick(@c);
	return const_of($type) unless $s;
	return "length($s->{name}::text)::$type" if $type =~ /^(integer|bigint|numeric)/;
	return "left($s->{name}::text, 20)" if $type eq 'text';
	return "to_jsonb($s->{name})" if $type eq 'jsonb';
	return "$s->{name} IS NULL" if $type eq 'boolean';
	return const_of($type);
}

# DROP COLUMN (CASCADE if something depends on it); a table keeps one column
sub op_drop_column
{
	my $t = any_table() or return 0;
	return 0 if rename_blocked($t);
	my @c = cat_cols($t);
	return 0 if @c < 2;
	@c = grep { !$_->{identity} } @c if $AVOID{bug2};
	@c = grep { !$_->{serial} } @c if $AVOID{bug5};
	return 0 if content_blocked($t);
	$kept{ $t->{oid} } = 1;
	my $c = pick(@c) or return 0;
	my $cascade = $c->{deps} && cascade_ok() ? ' CASCADE' : chance(0.2) && cascade_ok() ? ' CASCADE' : '';
	mig_do("ALTER TABLE $t->{q} DROP COLUMN $c->{name}$cascade");
	return 1;
}

# RENAME of a column, table, view, index, sequence or constraint
sub op_rename
{
	my $what = pick_w([45, 'column'], [20, 'table'], [10, 'view'], [10, 'index'], [5, 'sequence'], [10, 'constraint']);
	if ($what eq 'column')
	{
		my $t = any_table() or return 0;
		my $c = pick(cat_cols($t)) or return 0;
		my $n = newname('c');
		if (mig_do("ALTER TABLE $t->{q} RENAME COLUMN $c->{name} TO $n"))
		{
			$renamed{"$t->{oid}:$c->{num}"} = 1;
			$mig_rename_any = 1;
		}
		return 1;
	}
	if ($what eq 'constraint')
	{
		my $t = any_table() or return 0;
		my $k = pick(cat_cons($t)) or return 0;
		mig_do("ALTER TABLE $t->{q} RENAME CONSTRAINT $k->{name} TO " . newname('k'));
		return 1;
	}
	my ($kind, $word, $p) = @{ { table => ['r', 'TABLE', 't'], view => ['v', 'VIEW', 'v'], index => ['i', 'INDEX', 'i'], sequence => ['S', 'SEQUENCE', 's'] }->{$what} };
	my $r = pick($kind eq 'r' ? cat_tables() : cat_rels($kind)) or return 0;
	mig_do("ALTER $word $r->{q} RENAME TO " . newname($p));
	return 1;
}

# ALTER COLUMN TYPE, by a conversion that keeps the values
sub op_alter_type
{
	my $t = any_table() or return 0;
	return 0 if rename_blocked($t);
	return 0 if content_blocked($t);
	my @c = grep { !$_->{deps} && !$_->{identity} && !$_->{generated} } cat_cols($t);
	my $c = pick(@c) or return 0;
	$kept{ $t->{oid} } = 1;
	my %to = (
		'integer'                  => ['bigint', 'numeric', 'text'],
		'bigint'                   => ['numeric', 'text', 'integer'],
		'text'                     => ['character varying', 'jsonb'],
		'character varying'        => ['text'],
		'jsonb'                    => ['text'],
		'boolean'                  => ['integer', 'text'],
		'timestamp with time zone' => ['text', 'timestamp without time zone'],
		'timestamp without time zone' => ['timestamp with time zone'],
	);
	my $base = $c->{type} =~ /^numeric/ ? 'numeric' : $c->{type} =~ /^character varying/ ? 'character varying' : $c->{type};
	$to{numeric} = ['text', 'numeric(14,3)', 'double precision'];
	my $new = pick(@{ $to{$base} // [] }) or return 0;
	my $using = $new eq 'jsonb' ? " USING to_jsonb($c->{name})" : $base eq 'boolean' && $new eq 'integer' ? " USING $c->{name}::integer"
		: $new eq 'integer' ? " USING ($c->{name} % 1000000)::integer" : '';
	mig_do("ALTER TABLE $t->{q} ALTER COLUMN $c->{name} TYPE $new$using");
	return 1;
}

# SET DEFAULT / DROP DEFAULT
sub op_default
{
	my $t = any_table() or return 0;
	my $c = pick(grep { !$_->{identity} && !$_->{generated} } cat_cols($t)) or return 0;
	if ($c->{hasdef} && chance(0.5)) { mig_do("ALTER TABLE $t->{q} ALTER COLUMN $c->{name} DROP DEFAULT"); }
	else { mig_do("ALTER TABLE $t->{q} ALTER COLUMN $c->{name} SET DEFAULT " . const_of($c->{type} =~ s/\(.*//r)); }
	return 1;
}

# SET NOT NULL (where there are no NULLs, mostly) / DROP NOT NULL
sub op_notnull
{
	my $t = any_table() or return 0;
	my $c = pick(grep { !$_->{identity} && !$_->{pk} } cat_cols($t)) or return 0;
	if ($c->{notnull}) { mig_do("ALTER TABLE $t->{q} ALTER COLUMN $c->{name} DROP NOT NULL"); return 1; }
	if (chance(0.7) && !$c->{generated})
	{
		mig_do("UPDATE $t->{q} SET $c->{name} = " . const_of($c->{type} =~ s/\(.*//r) . " WHERE $c->{name} IS NULL")
			if $c->{type} =~ /^(integer|bigint|numeric|text|jsonb|timestamp with time zone|boolean)/;
	}
	mig_do("ALTER TABLE $t->{q} ALTER COLUMN $c->{name} SET NOT NULL");
	return 1;
}

# ADD CONSTRAINT: CHECK, UNIQUE, PRIMARY KEY, FOREIGN KEY (maybe NOT VALID)
sub op_add_constraint
{
	my $t = any_table() or return 0;
	my @c = cat_cols($t);
	my $k = newname('k');
	my $kind = pick_w([35, 'check'], [25, 'unique'], [10, 'pk'], [30, 'fk']);
	if ($kind eq 'check')
	{
		my $c = pick(@c) or return 0;
		my $cond = $c->{type} =~ /^(integer|bigint|numeric|smallint)/ ? "$c->{name} > -1000000000"
			: $c->{type} =~ /^(text|character varying)/ ? "length($c->{name}) < 1000000"
			: "$c->{name} IS NOT NULL OR $c->{name} IS NULL";
		my @f = grep { $_->{name} =~ /^f/ } cat_funcs();
		if (@f && $c->{type} eq 'integer' && chance(0.3)) { $cond = "$f[0]{q}($c->{name}) IS NOT NULL OR $c->{name} IS NULL"; $cond =~ s/\(integer\)//; }
		mig_do("ALTER TABLE $t->{q} ADD CONSTRAINT $k CHECK ($cond)" . (chance(0.2) ? ' NOT VALID' : ''));
	}
	elsif ($kind eq 'unique' || $kind eq 'pk')
	{
		return 0 if $kind eq 'pk' && grep { $_->{pk} } @c;
		my $c = pick(grep { $_->{type} !~ /^(jsonb|boolean)$/ } @c) or return 0;
		mig_do("ALTER TABLE $t->{q} ADD CONSTRAINT $k " . ($kind eq 'pk' ? 'PRIMARY KEY' : 'UNIQUE') . " ($c->{name})");
	}
	else
	{
		# to a unique integer column of a table (maybe this one)
		my @targets;
		for my $u (cat_tables())
		{
			push @targets, map { [$u, $_] } grep { $_->{uniq} && $_->{type} =~ /^(integer|bigint)$/ } cat_cols($u);
		}
		my $to = pick(@targets) or return 0;
		my $c = pick(grep { $_->{type} =~ /^(integer|bigint)$/ && !$_->{generated} } @c) or return 0;
		mig_do("ALTER TABLE $t->{q} ADD CONSTRAINT $k FOREIGN KEY ($c->{name}) REFERENCES $to->[0]{q} ($to->[1]{name})"
			   . pick('', ' ON DELETE CASCADE', ' ON DELETE SET NULL') . (chance(0.5) ? ' NOT VALID' : ''));
	}
	return 1;
}

# DROP CONSTRAINT (CASCADE sometimes); not one whose columns were renamed
# in this migration (the documented limit)
sub op_drop_constraint
{
	my $t = any_table() or return 0;
	my @k = grep { !hits_rename($t->{oid}, @{ $_->{cols} }) } cat_cons($t);
	my $k = pick(@k) or return 0;
	my $cascade = cascade_ok() && chance(0.4) ? ' CASCADE' : '';
	mig_do("ALTER TABLE $t->{q} DROP CONSTRAINT $k->{name}$cascade");
	return 1;
}

# CREATE INDEX: one or two columns, maybe unique, partial or on an expression
sub op_create_index
{
	my $t = any_table() or return 0;
	my @c = grep { $_->{type} ne 'jsonb' } cat_cols($t);
	return 0 unless @c;
	my $i = newname('i');
	my @on = (pick(@c));
	push @on, pick(@c) if @c > 1 && chance(0.3) && $on[0]{name} ne $c[-1]{name};
	@on = ($on[0]) if @on == 2 && $on[0]{name} eq $on[1]{name};
	# text on an expression: values over 8 kB do not fit in an index row
	my $cols = join(', ', map { $_->{type} =~ /^(text|character varying)/ ? (chance(0.5) ? "(lower(left($_->{name}, 100)))" : "(left($_->{name}, 200))") : $_->{name} } @on);
	my $where = chance(0.25) ? " WHERE $on[0]{name} IS NOT NULL" : '';
	my $uniq = chance(0.2) ? 'UNIQUE ' : '';
	mig_do("CREATE ${uniq}INDEX $i ON $t->{q} ($cols)$where");
	return 1;
}

# DROP INDEX (not one that a constraint owns; not after its columns or its
# table's columns were renamed in this migration)
sub op_drop_index
{
	my @i = grep { !hits_rename(index_table($_->{oid}), index_cols($_->{oid})) } cat_rels('i');
	my $i = pick(@i) or return 0;
	mig_do("DROP INDEX $i->{q}");
	return 1;
}

# CREATE TABLE, maybe with a key, identity, a foreign key; a few rows
sub op_create_table
{
	my $n = newname('t');
	my @defs;
	my $key = pick('id integer PRIMARY KEY', 'id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY', 'id bigserial', '');
	push @defs, $key if $key;
	push @defs, 'a text', 'b integer';
	push @defs, 'd jsonb DEFAULT \'{}\'' if chance(0.5);
	my @targets;
	for my $u (cat_tables())
	{
		push @targets, map { "$u->{q} ($_->{name})" } grep { $_->{uniq} && $_->{type} eq 'integer' } cat_cols($u);
	}
	push @defs, 'r integer REFERENCES ' . pick(@targets) if @targets && chance(0.4);
	mig_do("CREATE TABLE fd.$n (" . join(', ', @defs) . ')') or return 1;
	if (chance(0.8))
	{
		my $has_r = grep { /^r / } @defs;
		my @rows = map { "(" . ($key =~ /^id integer PRIMARY/ ? ++$uniq . ', ' : '') . $dbh->quote(gen_val('text', 1)) . ', ' . rrange(-100, 100)
							 . ($has_r ? ', NULL' : '') . ')' } 1 .. rrange(1, 6);
		mig_do("INSERT INTO fd.$n (" . ($key =~ /^id integer PRIMARY/ ? 'id, ' : '') . 'a, b' . ($has_r ? ', r' : '') . ') VALUES ' . join(', ', @rows));
	}
	return 1;
}

# DROP TABLE (CASCADE when something depends on it)
sub op_drop_table
{
	my $t = any_table() or return 0;
	return 0 if rename_blocked($t);
	return 0 if $AVOID{bug4} && cat_rows("SELECT count(*) FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef a ON a.oid = d.objid"
										 . " WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND a.adrelid = \$1"
										 . " AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
										 . " AND pg_catalog.pg_get_serial_sequence(\$1::pg_catalog.regclass::text, (SELECT attname FROM pg_catalog.pg_attribute"
										 . "  WHERE attrelid = \$1 AND attnum = a.adnum)) IS NOT NULL", [$t->{oid}])->[0][0];
	my $deps = cat_rows("SELECT count(*) FROM pg_catalog.pg_depend d WHERE d.refobjid = \$1 AND d.classid IN"
						. " ('pg_catalog.pg_rewrite'::pg_catalog.regclass, 'pg_catalog.pg_constraint'::pg_catalog.regclass)"
						. " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid AND k.conrelid = \$1)"
						. " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid AND r.ev_class = \$1)", [$t->{oid}])->[0][0];
	return 0 if $deps && !cascade_ok();
	mig_do("DROP TABLE $t->{q}" . ($deps || chance(0.2) && cascade_ok() ? ' CASCADE' : ''));
	return 1;
}

# CREATE VIEW over a table, or over a view
sub op_create_view
{
	my $v = newname('v');
	if (chance(0.2) || $AVOID{bug6})
	{
		my $u = pick(cat_rels('v'));
		if ($u) { mig_do("CREATE VIEW fd.$v AS SELECT * FROM $u->{q} WHERE true"); return 1; }
		return 0 if $AVOID{bug6};
	}
	my $t = any_table() or return 0;
	my @c = cat_cols($t);
	my @sel = grep { chance(0.6) } @c;
	@sel = ($c[0]) unless @sel;
	mig_do("CREATE VIEW fd.$v AS SELECT " . join(', ', map { $_->{name} } @sel) . " FROM $t->{q}" . (chance(0.5) ? " WHERE $sel[0]{name} IS NOT NULL" : ''));
	return 1;
}

# CREATE OR REPLACE VIEW: the same columns and one more at the end, or
# another filter
sub op_replace_view
{
	my $v = pick(cat_rels('v')) or return 0;
	my $def = cat_rows('SELECT pg_catalog.pg_get_viewdef($1::oid)', [$v->{oid}])->[0][0];
	$def =~ s/;\s*$//;
	my $extra = chance(0.5) ? ', ' . rrange(1, 99) . ' AS ' . newname('x') : '';
	$extra = '' if $AVOID{bug1};
	mig_do("CREATE OR REPLACE VIEW $v->{q} AS SELECT s.*$extra FROM ($def) s" . ($extra ? '' : ' WHERE true'));
	return 1;
}

# DROP VIEW (CASCADE when another view depends on it)
sub op_drop_view
{
	my $v = pick(cat_rels('v')) or return 0;
	my $deps = cat_rows("SELECT count(*) FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
						. " WHERE d.refobjid = \$1 AND r.ev_class <> \$1", [$v->{oid}])->[0][0];
	return 0 if $deps && !cascade_ok();
	mig_do("DROP VIEW $v->{q}" . ($deps ? ' CASCADE' : ''));
	return 1;
}

# CREATE SEQUENCE (and a few nextval) / DROP SEQUENCE / nextval of one
sub op_sequence
{
	my $r = rint(10);
	if ($r < 4)
	{
		my $s = newname('s');
		mig_do("CREATE SEQUENCE fd.$s" . pick('', ' START 100', ' INCREMENT 5 MINVALUE -100 START -7'));
		mig_do("SELECT nextval('fd.$s') FROM generate_series(1, " . rrange(1, 3) . ')') if chance(0.5);
		return 1;
	}
	my $s = pick(cat_rels('S')) or return 0;
	if ($r < 7)
	{
		my $deps = cat_rows("SELECT count(*) FROM pg_catalog.pg_depend WHERE refobjid = \$1 AND deptype = 'n'", [$s->{oid}])->[0][0];
		return 0 if $deps && !cascade_ok();
		mig_do("DROP SEQUENCE $s->{q}" . ($deps ? ' CASCADE' : ''));
	}
	else { mig_do("SELECT nextval('$s->{q}') FROM generate_series(1, " . rrange(1, 4) . ')'); }
	return 1;
}

# CREATE FUNCTION / CREATE OR REPLACE FUNCTION (another body) / DROP
# FUNCTION (CASCADE when something depends on it)
sub op_function
{
	my $r = rint(10);
	my @f = grep { $_->{q} =~ /\(integer\)$/ } cat_funcs();
	if ($r < 4 || !@f)
	{
		my $f = newname('f');
		mig_do("CREATE FUNCTION fd.$f(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + " . rrange(1, 9) . "'");
		return 1;
	}
	my $f = pick(@f);
	if ($r < 7)
	{
		my $sig = $f->{q} =~ s/\(integer\)/(x integer)/r;
		mig_do("CREATE OR REPLACE FUNCTION $sig RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x * " . rrange(2, 9) . "'");
		return 1;
	}
	my $deps = cat_rows("SELECT count(*) FROM pg_catalog.pg_depend WHERE refobjid = \$1 AND deptype = 'n'", [$f->{oid}])->[0][0];
	return 0 if $deps && !cascade_ok();
	mig_do("DROP FUNCTION $f->{q}" . ($deps ? ' CASCADE' : ''));
	return 1;
}

# COMMENT ON a table, column, view, sequence, function, index or constraint
sub op_comment
{
	my $txt = chance(0.2) ? 'NULL' : $dbh->quote('note ' . rstr(rrange(1, 12)));
	my $what = rint(7);
	if ($what <= 1)
	{
		my $t = any_table() or return 0;
		if ($what == 0) { mig_do("COMMENT ON TABLE $t->{q} IS $txt"); return 1; }
		my $c = pick(cat_cols($t)) or return 0;
		mig_do("COMMENT ON COLUMN $t->{q}.$c->{name} IS $txt");
		return 1;
	}
	if ($what == 2) { my $v = pick(cat_rels('v')) or return 0; mig_do("COMMENT ON VIEW $v->{q} IS $txt"); return 1; }
	if ($what == 3) { my $s = pick(cat_rels('S')) or return 0; mig_do("COMMENT ON SEQUENCE $s->{q} IS $txt"); return 1; }
	if ($what == 4) { my $f = pick(cat_funcs()) or return 0; mig_do("COMMENT ON FUNCTION $f->{q} IS $txt"); return 1; }
	if ($what == 5) { my $i = pick(cat_rels('i')) or return 0; mig_do("COMMENT ON INDEX $i->{q} IS $txt"); return 1; }
	my $t = any_table() or return 0;
	my $k = pick(cat_cons($t)) or return 0;
	mig_do("COMMENT ON CONSTRAINT $k->{name} ON $t->{q} IS $txt");
	return 1;
}

# GRANT / REVOKE on a table (or some of its columns), a sequence, a function
sub op_grant
{
	my $grant = chance(0.6);
	my ($verb, $prep) = $grant ? ('GRANT', 'TO') : ('REVOKE', 'FROM');
	my $who = pick('fd_role', 'fd_role', 'PUBLIC');
	my $what = rint(4);
	if ($what <= 1)
	{
		my $t = any_table() or return 0;
		if ($what == 0) { mig_do("$verb " . pick('SELECT', 'SELECT, INSERT', 'ALL', 'UPDATE, DELETE') . " ON TABLE $t->{q} $prep $who"); return 1; }
		my $c = pick(cat_cols($t)) or return 0;
		mig_do("$verb " . pick('SELECT', 'UPDATE') . " ($c->{name}) ON TABLE $t->{q} $prep $who");
		return 1;
	}
	if ($what == 2) { my $s = pick(cat_rels('S')) or return 0; mig_do("$verb USAGE ON SEQUENCE $s->{q} $prep $who"); return 1; }
	my $f = pick(cat_funcs()) or return 0;
	mig_do("$verb EXECUTE ON FUNCTION $f->{q} $prep $who");
	return 1;
}

# OWNER TO: a table, view, sequence or function to fd_role or back
sub op_owner
{
	my $to = pick('fd_role', 'postgres');
	my $what = rint(4);
	if ($what == 0) { my $t = any_table() or return 0; mig_do("ALTER TABLE $t->{q} OWNER TO $to"); return 1; }
	if ($what == 1) { my $v = pick(cat_rels('v')) or return 0; mig_do("ALTER VIEW $v->{q} OWNER TO $to"); return 1; }
	if ($what == 2) { my $s = pick(cat_rels('S')) or return 0; mig_do("ALTER SEQUENCE $s->{q} OWNER TO $to"); return 1; }
	my $f = pick(cat_funcs()) or return 0;
	mig_do("ALTER FUNCTION $f->{q} OWNER TO $to");
	return 1;
}

# SET SCHEMA: a table, view, sequence or function from fd to fd_x or back
sub op_set_schema
{
	my $what = rint(4);
	my $r = $what == 0 ? any_table() : $what == 1 ? pick(cat_rels('v')) : $what == 2 ? pick(cat_rels('S')) : pick(cat_funcs());
	return 0 unless $r;
	my $word = ('TABLE', 'VIEW', 'SEQUENCE', 'FUNCTION')[$what];
	return 0 if $what == 0 && $AVOID{bug9} && grep { $_->{serial} } cat_cols($r);
	mig_do("ALTER $word $r->{q} SET SCHEMA " . ($r->{nsp} eq 'fd' ? 'fd_x' : 'fd'));
	return 1;
}

# DDL the journal cannot undo, on purpose: refused with
# rollback.irreversible_ddl = error (SQLSTATE 0A000), nothing changes.
# CREATE INDEX CONCURRENTLY only outside a transaction block.
sub op_irreversible
{
	if (!$in_txn && chance(0.5))
	{
		my $t = any_table() or return 0;
		my $c = pick(grep { $_->{type} ne 'jsonb' } cat_cols($t)) or return 0;
		mig_do("CREATE INDEX CONCURRENTLY " . newname('i') . " ON $t->{q} ($c->{name})", [], ['0A000']) and mismatch("CREATE INDEX CONCURRENTLY was not refused in a migration");
		return 1;
	}
	mig_do("ALTER TYPE fd.mood ADD VALUE '" . newname('m') . "'", [], ['0A000']) and mismatch("ALTER TYPE ... ADD VALUE was not refused in a migration");
	return 1;
}

######################################################################
# DML

# a predicate that picks some rows, deterministically (by ctid)
sub pred { return "(hashtext(ctid::text || '" . rint(1000) . "') & 7) < " . rrange(1, 6); }

# INSERT a few rows (values for the columns we can write; the foreign keys
# from a row of the table they reference, or NULL)
sub op_insert
{
	my $t = any_table() or return 0;
	my @c = grep { !$_->{generated} && !($_->{identity} && chance(0.8)) } cat_cols($t);
	my $fks = cat_rows("SELECT a.attname, format('SELECT %I FROM %s ORDER BY 1 LIMIT 1 OFFSET %s', fa.attname, k.confrelid::regclass, \$2::int)"
					   . " FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]"
					   . " JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = k.confkey[1]"
					   . " WHERE k.conrelid = \$1 AND k.contype = 'f' AND cardinality(k.conkey) = 1", [$t->{oid}, rint(5)]);
	my %fk = map { $_->[0] => $_->[1] } @$fks;
	my @use = grep { $fk{ $_->{name} } || defined gen_val($_->{type}, 0) || !$_->{notnull} } @c;
	@use = grep { !$_->{hasdef} || chance(0.5) || $_->{notnull} && !$_->{identity} } @use;
	my $n = rrange(1, 5);
	my (@binds, @tuples);
	for (1 .. $n)
	{
		my @v;
		for my $c (@use)
		{
			if ($fk{ $c->{name} }) { push @v, chance(0.2) && !$c->{notnull} ? 'NULL' : "($fk{$c->{name}})"; next; }
			push @binds, gen_val($c->{type}, !$c->{notnull}, $c->{uniq});
			push @v, '$' . scalar(@binds) . "::$c->{type}";
		}
		push @tuples, '(' . join(', ', @v) . ')';
	}
	my $ov = (grep { $_->{identity} } @use) ? ' OVERRIDING SYSTEM VALUE' : '';
	if (!@use) { mig_do("INSERT INTO $t->{q} DEFAULT VALUES"); return 1; }
	mig_do("INSERT INTO $t->{q} (" . join(', ', map { $_->{name} } @use) . ")$ov VALUES " . join(', ', @tuples), \@binds);
	return 1;
}

# UPDATE some rows: one or two columns changed
sub op_update
{
	my $t = any_table() or return 0;
	my @c = grep { !$_->{generated} && !$_->{identity} && defined change_expr($_->{name}, $_->{type}) } cat_cols($t);
	return 0 unless @c;
	my @set = (pick(@c));
	push @set, pick(@c) if chance(0.3);
	@set = ($set[0]) if @set == 2 && $set[0]{name} eq $set[1]{name};
	mig_do("UPDATE $t->{q} SET " . join(', ', map { "$_->{name} = " . change_expr($_->{name}, $_->{type}) } @set) . " WHERE " . pred());
	return 1;
}

# DELETE some rows
sub op_delete
{
	my $t = any_table() or return 0;
	mig_do("DELETE FROM $t->{q} WHERE " . pred());
	return 1;
}

# TRUNCATE a table (CASCADE when it is referenced), rarely
sub op_truncate
{
	my $t = any_table() or return 0;
	mig_do("TRUNCATE $t->{q}" . (chance(0.7) ? ' CASCADE' : ''), [], [@DATA_ERRS, '0A000']);
	return 1;
}

# one random statement of a migration (DDL mostly, DML between)
sub one_stmt
{
	my @ops = (
		[10, \&op_add_column], [6, \&op_drop_column], [7, \&op_rename], [6, \&op_alter_type], [5, \&op_default],
		[5, \&op_notnull], [7, \&op_add_constraint], [5, \&op_drop_constraint], [5, \&op_create_index], [4, \&op_drop_index],
		[3, \&op_create_table], [3, \&op_drop_table], [3, \&op_create_view], [2, \&op_replace_view], [2, \&op_drop_view],
		[3, \&op_sequence], [3, \&op_function], [3, \&op_comment], [3, \&op_grant], [2, \&op_owner], [2, \&op_set_schema],
		[1, \&op_irreversible],
		[8, \&op_insert], [7, \&op_update], [4, \&op_delete], [1, \&op_truncate],
	);
	for (1 .. 10)
	{
		my $op = pick_w(@ops);
		return if $op->();
	}
}

# DML alone (other sessions' writes between migrations)
sub one_dml
{
	my $op = pick_w([5, \&op_insert], [4, \&op_update], [2, \&op_delete]);
	local $n_stmts = $n_stmts;
	$op->();
}

######################################################################
# Setup

# the tables, view, sequence, function and type the migrations start from
sub setup
{
	sql_do('CREATE SCHEMA fd');
	sql_do('CREATE SCHEMA fd_x');
	# fd_role may come to own tables (OWNER TO): an owner reaches its schema
	# (a revert refuses, clearly, a table whose owner cannot; rb_migration)
	sql_do('GRANT USAGE ON SCHEMA fd, fd_x TO fd_role');
	sql_do("CREATE TYPE fd.mood AS ENUM ('sad', 'ok')");
	sql_do('CREATE SEQUENCE fd.sq START 10');
	sql_do("CREATE FUNCTION fd.f0(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + 1'");
	my $cols = sub {
		my @c;
		for my $i (1 .. rrange(1, 4))
		{
			my $type = new_col_type();
			push @c, "c0$i $type" . (chance(0.2) ? ' DEFAULT ' . const_of($type) : '') . (chance(0.1) ? ' NOT NULL' : '');
		}
		return @c;
	};
	sql_do('CREATE TABLE fd.p (' . join(', ', 'id integer PRIMARY KEY', 'name text NOT NULL', 'big text', $cols->()) . ')');
	sql_do('CREATE TABLE fd.c (' . join(', ', 'cid serial PRIMARY KEY', 'pid integer REFERENCES fd.p (id) ON DELETE ' . pick('CASCADE', 'SET NULL', 'NO ACTION'),
										 'note text', $cols->()) . ')');
	my $n = 0;
	for my $kind (map { pick('identity', 'nokey', 'comppk', 'serial') } 1 .. rrange(1, 3))
	{
		my @k = $kind eq 'identity' ? ('idn integer GENERATED ' . pick('ALWAYS', 'BY DEFAULT') . ' AS IDENTITY PRIMARY KEY')
			: $kind eq 'comppk' ? ('a integer', 'b text', 'PRIMARY KEY (a, b)')
			: $kind eq 'serial' ? ('sn bigserial') : ();
		my @c = ($cols->(), @k);
		@c = ($c[-1], @c[0 .. $#c - 1]) if $kind eq 'serial';
		sql_do('CREATE TABLE fd.t' . ++$n . ' (' . join(', ', grep { !/^PRIMARY/ } @c) . join('', map { ", $_" } grep { /^PRIMARY/ } @c) . ')');
	}
	{
		local $n_stmts;
		op_create_index() for 1 .. rrange(1, 2);
		sql_do('CREATE VIEW fd.v0 AS SELECT id, name FROM fd.p WHERE id > 0');
		sql_do("COMMENT ON TABLE fd.p IS 'parent'");
		sql_do('GRANT SELECT ON fd.p TO fd_role');
		sql_do("SELECT rollback.track_schema('fd')");
		sql_do("SELECT rollback.track_schema('fd_x')");
		for my $t (cat_tables())
		{
			my $k = $t->{name} eq 'p' ? 6 : rrange(1, 5);
			op_insert_into($t) for 1 .. $k;
		}
	}
}

# INSERT rows into one given table (op_insert picks a random one)
sub op_insert_into
{
	my ($t) = @_;
	no warnings 'redefine';
	local *any_table = sub { return $t; };
	return op_insert();
}

######################################################################
# Migrations

my $mig_no = 0;

# the row of rollback.migrations of a version: [status, kind, irreversible]
sub mig_row
{
	my ($v) = @_;
	my $r = sql_rows('SELECT status, kind, irreversible FROM rollback.migrations WHERE version = $1 ORDER BY id DESC LIMIT 1', [$v]);
	return @$r ? $r->[0] : undef;
}

# check that a migration's status is as expected
sub check_status
{
	my ($v, $want, $when) = @_;
	$n_checks++;
	my $r = mig_row($v);
	my $got = $r ? "$r->[0]" . ($r->[2] ? ' irreversible' : '') : 'absent';
	mismatch("migration $v ($when): status $got, expected $want") if $got ne $want;
}

# the statements of a migration, in a transaction or not
sub mig_body
{
	my ($n) = @_;
	one_stmt() for 1 .. $n;
}

# Roll back the transaction of migration $what: it must leave nothing, the
# state taken before it ($before; sequences aside, nextval is not undone)
# and the $nbefore rows of rollback.migration
sub roll_back_migration
{
	my ($what, $before, $nbefore) = @_;
	txn_rollback();
	check_state("$what rolled back", $before, 1);
	$n_checks++;
	my $nafter = sql_one("SELECT count(*) FROM rollback.migration");
	mismatch("$what rolled back: " . ($nafter - $nbefore) . " rows left in rollback.migration") if $nafter != $nbefore;
}

# One migration of a random mode:
#   txn       BEGIN; begin_migration; ...; end_migration; COMMIT (or
#             end_migration after the COMMIT)
#   multi     begin_migration; autocommit statements and transactions (some
#             rolled back); end_migration
#   auto      BEGIN; DDL...; COMMIT with auto-tracking: labelled auto:<xid>
#   rollback  as txn or auto, then ROLLBACK: nothing may be left
# Pushes it on @stack with the state taken before it.
sub run_migration
{
	my $v = 'm' . ++$mig_no;
	my $mode = pick_w([30, 'txn'], [30, 'multi'], [30, 'auto'], [10, 'rollback']);
	my $explicit = chance(0.5);
	$explicit = 0 if $AVOID{bug3};
	%renamed = ();
	%kept = ();
	$mig_rename_any = 0;
	my $before = take_state();
	my $nbefore = sql_one("SELECT count(*) FROM rollback.migration");
	my $n = rrange(2, 10);
	$n_migrations++;
	logcomment("migration $v ($mode, $n statements)");
	print STDERR "migration $v: $mode\n" if $VERBOSE;
	if ($mode eq 'txn' || $mode eq 'rollback' && $explicit)
	{
		txn_begin();
		sql_one('SELECT rollback.begin_migration($1, $2)', [$v, "fuzz $mode"]);
		mig_body($n);
		if ($mode eq 'rollback')
		{
			roll_back_migration("migration $v", $before, $nbefore);
			# the session must not be in a migration any more
			$n_checks++;
			if (defined sql_one('SELECT rollback._current_migration()'))
			{
				mismatch("migration $v rolled back: the session is still in a migration (bug3)");
				# a new session, to go on past it
				$dbh->disconnect;
				connect_db();
			}
			return;
		}
		my $late = chance(0.2);
		sql_do('SELECT rollback.end_migration()') unless $late;
		txn_commit();
		sql_do('SELECT rollback.end_migration()') if $late;
	}
	elsif ($mode eq 'multi')
	{
		sql_one('SELECT rollback.begin_migration($1, $2)', [$v, "fuzz $mode"]);
		while ($n > 0)
		{
			if (chance(0.5))
			{
				my $k = rrange(1, $n);
				txn_begin();
				mig_body($k);
				if (chance(0.15)) { txn_rollback(); } else { txn_commit(); }
				$n -= $k;
			}
			else { mig_body(1); $n--; }
		}
		sql_do('SELECT rollback.end_migration()');
	}
	else
	{
		# auto-tracked: the first statement is DDL on a tracked schema
		txn_begin();
		my $t = any_table();
		if ($t && chance(0.5)) { mig_do("COMMENT ON TABLE $t->{q} IS " . $dbh->quote('auto ' . $v)); }
		else { mig_do('CREATE SEQUENCE fd.' . newname('s')); }
		my $xid = cat_rows('SELECT pg_current_xact_id()::text')->[0][0];
		$AUTOVAR{$xid} = "xid_$v";
		print $LOG "SELECT pg_current_xact_id()::text AS xid_$v \\gset\n" if $LOG;
		$n_checks++;
		my $cur = sql_one('SELECT version FROM rollback.migration WHERE id = rollback._current_migration()');
		mismatch("auto-tracked migration: the transaction's migration is " . ($cur // 'none') . ", expected auto:$xid")
			if ($cur // '') ne "auto:$xid";
		mig_body($n - 1);
		if ($mode eq 'rollback')
		{
			roll_back_migration("auto-tracked migration $v", $before, $nbefore);
			return;
		}
		txn_commit();
		$v = "auto:$xid";
	}
	check_status($v, 'applied', 'after it');
	$n_checks++;
	my $nafter = sql_one("SELECT count(*) FROM rollback.migration");
	mismatch("migration $v ($mode): " . ($nafter - $nbefore) . " rows added to rollback.migration, expected 1",
			 map { "$_->[0] $_->[1] $_->[2]" } @{ sql_rows('SELECT version, kind, status FROM rollback.migration WHERE id > (SELECT max(id) FROM rollback.migration) - $1 ORDER BY id', [$nafter - $nbefore]) })
		if $nafter != $nbefore + 1;
	push @stack, { v => $v, before => $before, kept => { %kept } };
}

######################################################################
# Reverts

# Revert through rollback.$fn($arg) (revert_migration or revert_to; $arg
# undef: revert_migration's default, the last one applied), after maybe a
# dry run and a revert rolled back, which must change nothing; then compare
# with $want, the state before the oldest migration it reverts.  @vs: the
# versions it reverts; $label: the revert's own version.  Sometimes the
# revert is reverted in turn.
# Run a revert: 1 when it ran, 0 when PostgreSQL refused to build an index
# over the rows the revert had deleted in its own transaction (54000, "index
# row requires N bytes"): an index build still indexes them, and a key too
# large for an index entry fails it, as DELETE then ADD PRIMARY KEY in one
# transaction does (docs/limits.md).  The revert must then change nothing.
# Any other error ends the seed.
sub run_revert
{
	my ($sql, $b) = @_;
	return 1 if sql_do($sql, $b, ['54000']);
	mismatch("revert refused with 54000 for another reason: " . short($FuzzCommon::last_expected, 200))
		unless ($FuzzCommon::last_expected // '') =~ /index row requires \d+ bytes/;
	logcomment("the revert was refused: an index entry too large for a row it deleted");
	return 0;
}

sub do_revert
{
	my ($fn, $arg, $want, $label, @vs) = @_;
	my $call = "rollback.$fn(" . (defined $arg ? '$1' : '') . (defined $arg ? ', ' : '') . "reason => 'fuzz_ddl')";
	my $b = defined $arg ? [$arg] : [];
	logcomment("revert: $fn(" . ($arg // '') . "): " . join(', ', @vs));
	my $pre = take_state();
	if (chance(0.3))
	{
		my $r = sql_rows("SELECT step, action, detail, rows FROM rollback.$fn(" . (defined $arg ? '$1, ' : 'NULL, ') . "dry_run => true)", $b);
		$n_checks++;
		mismatch("dry run of $fn(" . ($arg // '') . ") returned no steps") unless @$r;
		print STDERR "  dry run: " . scalar(@$r) . " steps\n" if $VERBOSE;
		check_state("after the dry run of $fn(" . ($arg // '') . ")", $pre);
		check_status($_, 'applied', 'after a dry run') for @vs;
	}
	if (chance(0.2))
	{
		txn_begin();
		run_revert("SELECT * FROM $call", $b);
		txn_rollback();
		check_state("after $fn(" . ($arg // '') . ") rolled back", $pre);
		check_status($_, 'applied', 'after a revert rolled back') for @vs;
	}
	if (!run_revert("SELECT * FROM $call", $b))
	{
		# nothing changed; the migrations stay applied, and no later revert
		# is aimed at them or past them
		check_state("after $fn(" . ($arg // '') . ") was refused", $pre);
		check_status($_, 'applied', 'after a refused revert') for @vs;
		@stack = ();
		return;
	}
	$n_reverts++;
	check_state("after $fn(" . ($arg // '') . ") of " . join(', ', @vs), $want);
	check_status($_, 'reverted', 'after its revert') for @vs;
	check_status($label, 'applied', 'after the revert');
	if (chance(0.2))
	{
		# the revert of the revert: back to the state before the revert.  The
		# reverted migrations stay reverted; older ones are not reverted past it.
		logcomment("revert of the revert $label");
		sql_rows('SELECT * FROM rollback.revert_migration($1)', [$label]);
		$n_reverts++;
		check_state("after reverting $label", $pre);
		check_status($label, 'reverted', 'after its revert');
		@stack = ();
	}
}

# revert the last migration, or every one after an older one (revert_to)
sub revert_some
{
	return unless @stack;
	if (@stack == 1 || chance(0.6))
	{
		my $m = pop @stack;
		do_revert('revert_migration', chance(0.3) ? undef : $m->{v}, $m->{before}, "revert:$m->{v}", $m->{v});
		return;
	}
	my $j = rint($#stack);		# target: not the last
	my @after = @stack[$j + 1 .. $#stack];
	splice @stack, $j + 1;
	my $label = @after == 1 ? "revert:$after[0]{v}" : "revert:$after[0]{v}..$after[-1]{v}";
	do_revert('revert_to', $stack[$j]{v}, $after[0]{before}, $label, reverse map { $_->{v} } @after);
}

######################################################################
# Main

rng_seed($SEED, 0xD1B54A32D192ED03);
open_log("-- fuzz_ddl.pl --seed $SEED --migrations $MIGRATIONS" . ($AVOID ne '' ? " --avoid $AVOID" : ''));

my $t0 = time;
my $ok = eval {
	fresh_db();
	sql_do('SET search_path = pg_catalog');
	setup();
	$phase = 'migrations';
	($n_stmts) = (0);
	for my $i (1 .. $MIGRATIONS)
	{
		if (chance(0.3))
		{
			# other sessions' writes between migrations (not migrations: no DDL)
			one_dml() for 1 .. rrange(1, 3);
		}
		run_migration();
		revert_some() while @stack && chance(0.35);
	}
	# the end: every migration left, reverted
	$phase = 'final reverts';
	if (@stack > 1)
	{
		my @after = @stack[1 .. $#stack];
		splice @stack, 1;
		do_revert('revert_to', $stack[0]{v}, $after[0]{before}, @after == 1 ? "revert:$after[0]{v}" : "revert:$after[0]{v}..$after[-1]{v}",
				  reverse map { $_->{v} } @after);
	}
	if (@stack)
	{
		my $m = pop @stack;
		do_revert('revert_migration', $m->{v}, $m->{before}, "revert:$m->{v}", $m->{v});
	}
	$n_checks++;
	my $bad = sql_rows("SELECT version, status FROM rollback.migration WHERE status IN ('running', 'revert_failed') ORDER BY id");
	mismatch("migrations left " . join(', ', map { "$_->[0] $_->[1]" } @$bad)) if @$bad;
	1;
};
seed_died($@) if !$ok;

print "ddl seed $SEED: migrations $n_migrations, statements $n_stmts, reverts $n_reverts, mismatches $n_mismatch" . ($VERBOSE ? ", checks $n_checks, " . (time - $t0) . " s" : '') . "\n";
print "ddl seed $SEED: $n_errors unexpected SQL errors\n" if $n_errors;
my $fail = $n_mismatch || $n_errors;
$dbh->disconnect if $dbh;
if (!$fail && !$KEEP)
{
	# the database goes: a seed starts from a fresh one anyway
	my $p = dbi_connect('postgres');
	$p->do('DROP DATABASE IF EXISTS ' . $p->quote_identifier($DBNAME) . ' WITH (FORCE)') if $p;
	$p->disconnect if $p;
}
close $LOG if $LOG;
exit($fail ? 1 : 0);
