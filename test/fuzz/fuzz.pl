#!/usr/bin/perl
#
# fuzz.pl: seeded differential property test of the rollback extension.
#
#   perl test/fuzz/fuzz.pl --seed N [--ops M] [--dbname D] [--log FILE] [--keep] [--verbose]
#
# Connects through libpq's environment (PGHOST, PGPORT, PGUSER) to database D
# (default rb_fuzz; created, with the extension, if missing), and
# builds random tables in a fresh schema `fz`: with and without primary keys
# (int, composite, text; serial and identity columns), columns of many types
# with NULLs and TOASTed values, a dropped column, a stored generated column,
# a parent/child pair linked by a foreign key, user triggers (a BEFORE trigger
# counting writes, an AFTER trigger writing an audit table).  It tracks them
# (rollback.track, or rollback.track_schema before or after some are created,
# and a table created mid-run), then runs M random statements: INSERT (single,
# multi-row, bulk, INSERT ... SELECT, ON CONFLICT), COPY, UPDATE (incl. key
# updates), DELETE, TRUNCATE, VACUUM, in autocommit and in transactions with
# savepoints and rollbacks.  Between them it creates recovery points (over all
# tables or some; alone, at the start of a transaction that goes on writing,
# or while a second session's transaction is open), drops some, and right
# after each point copies every table for real into schema `fz_copy`.
#
# Checks: every point's rollback.as_of and rollback.diff against the copies;
# then several restores (dry run, rolled back, followed by more changes in the
# same transaction, or plain; over all tables or some; to points in random
# order, including the points the restores themselves take), each followed by
# the tables, the sequences and every point's as_of against the copies.
#
# The generator draws from its own PRNG (xorshift64*, in FuzzCommon.pm with
# what else fuzz_ddl.pl shares), never from Perl's rand() or hash order, so a
# seed replays exactly.  --log FILE writes every statement it sends, with
# values inlined, as a script psql can run (the few statements of the second
# session are marked "-- [second session]").
#
# Prints one line per seed: "seed N: ops X, points Y, checks Z, mismatches W".
# Exits 1 on any mismatch or unexpected SQL error.

use strict;
use warnings;
no warnings "portable";
use utf8;
use FindBin;
use lib $FindBin::Bin;
use FuzzCommon;
use Digest::MD5 qw(md5);

my $DEFAULT_OPS = 60;
my ($OPS, $GENONLY, $SKIP) = ($DEFAULT_OPS, 0, '');
parse_options('perl test/fuzz/fuzz.pl --seed N [--ops M] [--dbname D] [--log FILE] [--keep] [--verbose]',
	'ops=i'    => \$OPS,
	'gen-only' => \$GENONLY,	# no rollback.* calls, no checks: tries the generator alone
	'skip=s'   => \$SKIP,		# triage only, e.g. --skip diff,freeze (see %SKIP)
);
usage() unless defined $SEED && $SEED >= 0 && $OPS >= 0;
# --skip: leave out a feature to look past a known failure; the random stream
# stays the same, so a seed takes the same path with and without it.
#   diff    no rollback.diff checks
#   freeze  VACUUM under vacuum_freeze_min_age = 0 (it freezes rows written
#           after a point) runs as plain VACUUM
#   seqtxn  no check that a rolled-back restore leaves sequences as they were
my %SKIP = map { $_ => 1 } grep { length } split /,/, $SKIP;
for (sort keys %SKIP) { die "unknown --skip $_\n" unless /^(diff|freeze|seqtxn)$/; }
$DBNAME //= 'rb_fuzz';

$SEEDNAME = "seed $SEED";
$REPLAY = "perl test/fuzz/fuzz.pl --seed $SEED" . ($OPS != $DEFAULT_OPS ? " --ops $OPS" : '') . ($DBNAME ne 'rb_fuzz' ? " --dbname $DBNAME" : '');

######################################################################
# Database access (FuzzCommon's sql_do, sql_rows ...)

my $dbh2;			# the second session, connected when first needed (local $dbh = $dbh2 while it runs)
my ($n_ops, $n_checks) = (0, 0);
my @points;		# { name, tag, tables => [names], seqs => { seqname => next }, auto }
my $npoint = 0;

# the statements of the second session are marked in the --log script:
# psql replays them in its one session
$log_line = sub { my ($sql) = @_; return "$sql;" . ($dbh2 && $dbh == $dbh2 ? ' -- [second session]' : ''); };

######################################################################
# Values.  Each generator returns the value as the text PostgreSQL reads
# (undef for NULL); the same text serves for placeholders and for COPY.

my @TYPES = qw(int bigint numeric text bytea jsonb timestamptz int[] text[]);
my @CHARS = (('a' .. 'z'), ('A' .. 'Z'), ('0' .. '9'), ' ', ' ', "'", '"', '\\', "\t", "\n", ',', '{', '}', '(', ')',
			 '$', '%', '_', ':', '?', ';', "\x{e9}", "\x{fc}", "\x{6f22}", "\x{1f600}", "\x{3b1}");
my @ALPHA = ('a' .. 'z', 'A' .. 'Z', '-', '_', ' ');

# a random string of n characters, any
sub rstr { my ($n) = @_; return rchars(\@CHARS, $n); }

# a random string of n letters (and '-', '_', ' ')
sub ralpha { my ($n) = @_; return rchars(\@ALPHA, $n); }

sub gen_int
{
	return pick_w([40, sub { rrange(-1000, 1000) }], [35, sub { rrange(0, 2000000) }],
				  [10, sub { pick(-2147483648, 2147483647, 0, -1, 1) }], [15, sub { rrange(-2000000000, 2000000000) }])->();
}

sub gen_bigint
{
	return pick_w([30, sub { rrange(-100000, 100000) }],
				  [55, sub { my $v = rng_next() >> 1; (chance(0.5) ? '-' : '') . $v }],
				  [15, sub { pick('-9223372036854775808', '9223372036854775807', '0') }])->();
}

sub gen_numeric
{
	my ($col) = @_;
	my ($p, $s) = ($col->{prec}, $col->{scale});
	if (!$p)
	{
		return 'NaN' if chance(0.04);
		return pick('Infinity', '-Infinity') if chance(0.03);
		my $ip = join('', map { rint(10) } 1 .. rrange(1, 25));
		$ip =~ s/^0+(?=\d)//;
		my $fd = rint(12);
		my $v = ($fd ? "$ip." . join('', map { rint(10) } 1 .. $fd) : $ip);
		return (chance(0.3) ? '-' : '') . $v;
	}
	return 'NaN' if chance(0.03);
	my $ipd = $p - $s - 2;
	$ipd = 1 if $ipd < 1;
	my $ip = join('', map { rint(10) } 1 .. rrange(1, $ipd));
	$ip =~ s/^0+(?=\d)//;
	my $fd = rint($s + 3);		# more digits than the scale: rounded on input
	my $v = ($fd ? "$ip." . join('', map { rint(10) } 1 .. $fd) : $ip);
	return (chance(0.3) ? '-' : '') . $v;
}

sub gen_text
{
	return pick_w(
		[5,  sub { '' }],
		[50, sub { rstr(rrange(1, 40)) }],
		[15, sub { md5chain(rrange(8200, 20000)) }],		# TOASTed, stored out of line
		[3,  sub { md5chain(rrange(60000, 120000)) }],
		[7,  sub { my $u = 'ab' . rstr(2); scalar($u x rrange(500, 3000)) }],	# long, compresses
		[20, sub { ralpha(rrange(1, 12)) }],
	)->();
}

sub gen_bytea
{
	my $n = pick_w([60, sub { rrange(0, 40) }], [25, sub { rrange(3000, 9000) }], [15, sub { rrange(41, 400) }])->();
	my $b = '';
	my $h = pack('Q', rng_next());
	while (length($b) < $n) { $h = md5($h); $b .= $h; }
	return '\\x' . unpack('H*', substr($b, 0, $n));
}

sub json_str
{
	my ($s) = @_;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/\n/\\n/g;
	$s =~ s/\t/\\t/g;
	$s =~ s/\r/\\r/g;
	return '"' . $s . '"';
}

sub gen_json_value
{
	my ($depth) = @_;
	my $k = $depth >= 3 ? rint(5) : rint(8);
	return 'null' if $k == 0;
	return pick('true', 'false') if $k == 1;
	return pick(rrange(-100000, 100000), rrange(-1000, 1000) . '.' . rrange(0, 999), '1.50', '-0', '1e3', '12345678901234567890') if $k == 2;
	return json_str(chance(0.05) ? md5chain(rrange(2000, 6000)) : rstr(rrange(0, 15))) if $k <= 4;
	if ($k == 5)
	{
		return '[' . join(', ', map { gen_json_value($depth + 1) } 1 .. rint(5)) . ']';
	}
	return '{' . join(', ', map { json_str(pick('a', 'b', 'k', 'key', 'é', 'x y', ralpha(rrange(1, 6)))) . ': ' . gen_json_value($depth + 1) } 1 .. rint(5)) . '}';
}

sub gen_jsonb { return gen_json_value(0); }

sub gen_timestamptz
{
	return pick('infinity', '-infinity') if chance(0.04);
	my $t = rrange(0, 2200000000);
	my @g = gmtime($t);
	my $us = chance(0.5) ? 0 : rint(1000000);
	return sprintf('%04d-%02d-%02d %02d:%02d:%02d.%06d+00', $g[5] + 1900, $g[4] + 1, $g[3], $g[2], $g[1], $g[0], $us);
}

sub gen_int_array
{
	return '{}' if chance(0.1);
	return '{' . join(',', map { chance(0.15) ? 'NULL' : gen_int() } 1 .. rrange(1, 8)) . '}';
}

sub arr_elem
{
	my ($s) = @_;
	$s =~ s/(["\\])/\\$1/g;
	return '"' . $s . '"';
}

sub gen_text_array
{
	return '{}' if chance(0.1);
	return '{' . join(',', map { chance(0.15) ? 'NULL' : arr_elem(chance(0.03) ? md5chain(3000) : rstr(rrange(0, 10))) } 1 .. rrange(1, 6)) . '}';
}

sub gen_value
{
	my ($col) = @_;
	return undef if !$col->{notnull} && chance(0.25);
	my $t = $col->{type};
	return gen_int() if $t eq 'int';
	return gen_bigint() if $t eq 'bigint';
	return gen_numeric($col) if $t eq 'numeric';
	return gen_text() if $t eq 'text';
	return gen_bytea() if $t eq 'bytea';
	return gen_jsonb() if $t eq 'jsonb';
	return gen_timestamptz() if $t eq 'timestamptz';
	return gen_int_array() if $t eq 'int[]';
	return gen_text_array() if $t eq 'text[]';
	die "no generator for $t";
}

# an expression that changes a value of the column and cannot fail
sub safe_expr
{
	my ($col) = @_;
	my $c = "x.$col->{name}";
	my $t = $col->{type};
	return pick("$c / 2 + 1", "-($c / 2)") if $t eq 'int';
	return pick("$c / 2 - 1", "$c / 3") if $t eq 'bigint';
	return pick("$c + 1", "$c - 0.5", "round($c, 1)") if $t eq 'numeric' && !$col->{prec};
	return pick("$c + 1", "round($c, 1)") if $t eq 'numeric';
	return pick("$c || 'u'", "left($c, 10)", "CASE WHEN length($c) < 40000 THEN $c || $c ELSE left($c, 100) END", "upper($c)") if $t eq 'text';
	return pick("$c || '\\x00ff'::bytea", "substring($c from 1 for 5)") if $t eq 'bytea';
	return pick("$c || '{\"u\": 1}'::jsonb", "jsonb_build_array($c)") if $t eq 'jsonb';
	return pick("$c + interval '1 day 00:00:01'", "$c - interval '1 hour'") if $t eq 'timestamptz';
	return pick("array_append($c, 7)", "$c\[1:2]", "array_prepend(NULL::int, $c)") if $t eq 'int[]';
	return pick("array_append($c, 'u')", "array_prepend('v', $c)") if $t eq 'text[]';
	die "no expression for $t";
}

sub copy_escape
{
	my ($v) = @_;
	return '\\N' unless defined $v;
	$v =~ s/\\/\\\\/g;
	$v =~ s/\t/\\t/g;
	$v =~ s/\n/\\n/g;
	$v =~ s/\r/\\r/g;
	return $v;
}

######################################################################
# Tables
#
# A table: { name, kind (intpk comppk textpk nokey parent child), cols =>
# [ { name, type, sqltype, role (key data fk gen), gen (serial identity_always
# identity_default), notnull, prec, scale } ], keys => [names], ctr, ... }

my @tables;				# in creation order
my %tbl;				# name => table
my $track_mode;			# 'explicit' or 'schema'
my $schema_tracked = 0;

sub new_counter_key
{
	my ($t) = @_;
	$t->{ctr} += 1 + rint(3);
	die "key counter overflow" if $t->{ctr} >= 1048576;
	return $t->{ctr};
}

sub data_cols { my ($t) = @_; return grep { $_->{role} eq 'data' } @{ $t->{cols} }; }
sub col { my ($t, $n) = @_; for (@{ $t->{cols} }) { return $_ if $_->{name} eq $n; } die "no column $n"; }
sub keyed { my ($t) = @_; return scalar @{ $t->{keys} }; }
# key values come from a sequence (never supplied by us)
sub seq_key { my ($t) = @_; return keyed($t) && ($t->{keygen} // '') ne ''; }
sub qname { my ($t) = @_; return "fz.$t->{name}"; }
# what the catalog lists for a table: itself, or a partitioned table's leaves
sub relnames { my ($t) = @_; return $t->{leaves} ? @{ $t->{leaves} } : ($t->{name}); }
# how many relations track_schema tracks for it: the leaves and the root
sub ntracked { my ($t) = @_; return $t->{leaves} ? 1 + @{ $t->{leaves} } : 1; }

sub random_data_cols
{
	my ($t, $n) = @_;
	my @c;
	my @types = shuffle(@TYPES);
	for my $i (1 .. $n)
	{
		my $type = $i <= @types ? $types[$i - 1] : pick(@TYPES);
		my $col = { name => "c${i}_" . ($type =~ s/\[\]/arr/r), type => $type, sqltype => $type, role => 'data' };
		if ($type eq 'numeric' && chance(0.3))
		{
			$col->{prec} = rrange(8, 20);
			$col->{scale} = rrange(0, 4);
			$col->{sqltype} = "numeric($col->{prec},$col->{scale})";
		}
		if ($type eq 'text' && chance(0.1)) { $col->{sqltype} = 'text COLLATE "C"'; }
		push @c, $col;
	}
	return @c;
}

sub make_table_spec
{
	my ($name, $kind) = @_;
	my $t = { name => $name, kind => $kind, cols => [], keys => [], ctr => rrange(0, 1000) };
	my @data = random_data_cols($t, rrange(2, 6));
	my @keycols;
	if ($kind eq 'intpk' || $kind eq 'parent')
	{
		my $gen = $kind eq 'parent' ? pick('', '', 'serial')
			: pick_w([50, ''], [20, 'serial'], [15, 'identity_always'], [15, 'identity_default']);
		my $sqltype = $gen eq 'serial' ? 'serial' : $gen eq 'identity_always' ? 'int GENERATED ALWAYS AS IDENTITY'
			: $gen eq 'identity_default' ? 'bigint GENERATED BY DEFAULT AS IDENTITY' : 'int';
		@keycols = ({ name => 'id', type => 'int', sqltype => $sqltype, role => 'key', gen => $gen, notnull => 1 });
		$t->{keygen} = $gen;
	}
	elsif ($kind eq 'comppk')
	{
		@keycols = ({ name => 'a', type => 'int', sqltype => 'int', role => 'key', notnull => 1 },
					{ name => 'b', type => 'text', sqltype => 'text', role => 'key', notnull => 1 });
		@keycols = reverse @keycols if chance(0.5);
	}
	elsif ($kind eq 'textpk')
	{
		@keycols = ({ name => 'k', type => 'text', sqltype => 'text', role => 'key', notnull => 1 });
	}
	elsif ($kind eq 'nokey')
	{
		my $g = pick_w([50, ''], [25, 'serial'], [25, 'identity_always']);
		if ($g)
		{
			push @data, { name => 'sn', type => 'int', role => 'gen', gen => $g, notnull => 1,
						  sqltype => $g eq 'serial' ? 'serial' : 'int GENERATED ALWAYS AS IDENTITY' };
		}
	}
	elsif ($kind eq 'parted')
	{
		# LIST partitions on rg: leaf 0 keeps a dropped column, the last leaf
		# is created on its own with its columns reversed, then attached
		$t->{nparts} = rrange(2, 3);
		$t->{leaves} = [map { "$name\_$_" } 0 .. $t->{nparts} - 1];
		my $id = { name => 'id', type => 'int', sqltype => 'int', notnull => 1 };
		my $rg = { name => 'rg', type => 'int', sqltype => 'int', notnull => 1 };
		if (chance(0.6)) { $id->{role} = $rg->{role} = 'key'; @keycols = ($id, $rg); }
		else { $id->{role} = 'data'; $rg->{role} = 'part'; unshift @data, $id, $rg; }
	}
	elsif ($kind eq 'audit')
	{
		# written only by the AFTER triggers of the other tables
		@data = ({ name => 'tbl', type => 'text', sqltype => 'text', role => 'data' },
				 { name => 'op', type => 'text', sqltype => 'text', role => 'data' });
		$t->{noops} = 1;
	}
	elsif ($kind eq 'child')
	{
		if (chance(0.6))
		{
			my $gen = pick('', '', 'identity_always');
			@keycols = ({ name => 'cid', type => 'int', role => 'key', gen => $gen, notnull => 1,
						  sqltype => $gen ? 'int GENERATED ALWAYS AS IDENTITY' : 'int' });
			$t->{keygen} = $gen;
		}
		$t->{on_delete} = pick('CASCADE', 'CASCADE', 'NO ACTION', 'SET NULL');
		$t->{on_update} = pick('CASCADE', 'NO ACTION');
		push @data, { name => 'pid', type => 'int', sqltype => "int REFERENCES fz.tp (id) ON DELETE $t->{on_delete} ON UPDATE $t->{on_update}",
					  role => 'fk' };
	}
	# a stored generated column, which a restore must compute again
	my @src = grep { $_->{type} =~ /^(int|bigint|text|bytea)$/ && $_->{role} eq 'data' } @data;
	if (@src && $kind ne 'parted' && chance(0.25))
	{
		my $c = pick(@src);
		my $expr = $c->{type} eq 'int' ? "($c->{name}::bigint * 2)" : $c->{type} eq 'bigint' ? "($c->{name} / 2)" : "pg_catalog.length($c->{name})";
		push @data, { name => 'gx', type => 'bigint', role => 'gen', gen => 'generated', sqltype => "bigint GENERATED ALWAYS AS ($expr) STORED" };
	}
	# a column a BEFORE trigger counts writes in: a restore must not fire it
	if ($kind ne 'audit' && $kind ne 'parted' && chance(0.2))
	{
		push @data, { name => 'trg_n', type => 'int', role => 'gen', gen => 'trigger', sqltype => 'int' };
		$t->{count_trg} = 1;
	}
	$t->{keys} = [map { $_->{name} } @keycols];
	# keys first mostly, sometimes after a data column
	my @cols = (@keycols, @data);
	if (@keycols && @data && chance(0.3))
	{
		@cols = ($data[0], @keycols, @data[1 .. $#data]);
	}
	$t->{cols} = \@cols;
	# a dropped column leaves a gap in the attribute numbers (dropped before
	# the first point)
	$t->{dropcol} = chance(0.2) && $kind ne 'audit' ? rint(scalar @cols + 1) : -1;
	$t->{dropcol} = 1 if $kind eq 'parted';
	return $t;
}

sub create_table
{
	my ($t) = @_;
	my @defs;
	my $i = 0;
	for my $c (@{ $t->{cols} })
	{
		push @defs, 'dropme int' if $i++ == $t->{dropcol};
		push @defs, "$c->{name} $c->{sqltype}" . ($c->{notnull} && $c->{role} eq 'key' ? ' NOT NULL' : '');
	}
	push @defs, 'dropme int' if $t->{dropcol} == @{ $t->{cols} };
	push @defs, 'PRIMARY KEY (' . join(', ', @{ $t->{keys} }) . ')' if keyed($t);
	if ($t->{kind} eq 'parted')
	{
		my $n = $t->{nparts};
		sql_do('CREATE TABLE ' . qname($t) . ' (' . join(', ', @defs) . ') PARTITION BY LIST (rg)');
		sql_do("CREATE TABLE fz.$t->{leaves}[0] PARTITION OF " . qname($t) . ' FOR VALUES IN (0)');
		sql_do('ALTER TABLE ' . qname($t) . ' DROP COLUMN dropme');
		sql_do("CREATE TABLE fz.$t->{leaves}[$_] PARTITION OF " . qname($t) . " FOR VALUES IN ($_)") for 1 .. $n - 2;
		sql_do("CREATE TABLE fz.$t->{leaves}[$n - 1] (" . join(', ', map { "$_->{name} $_->{sqltype}" . ($_->{notnull} ? ' NOT NULL' : '') } reverse @{ $t->{cols} }) . ')');
		sql_do('ALTER TABLE ' . qname($t) . " ATTACH PARTITION fz.$t->{leaves}[$n - 1] FOR VALUES IN (" . ($n - 1) . ')');
	}
	else
	{
		sql_do('CREATE TABLE ' . qname($t) . ' (' . join(', ', @defs) . ')');
		sql_do('ALTER TABLE ' . qname($t) . ' DROP COLUMN dropme') if $t->{dropcol} >= 0;
	}
	if ($t->{count_trg})
	{
		sql_do(q{CREATE OR REPLACE FUNCTION fz.count_writes() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF TG_OP = 'UPDATE' THEN NEW.trg_n := coalesce(OLD.trg_n, 0) + 1; ELSE NEW.trg_n := 1; END IF;
	RETURN NEW;
END $f$});
		sql_do('CREATE TRIGGER a_count BEFORE INSERT OR UPDATE ON ' . qname($t) . ' FOR EACH ROW EXECUTE FUNCTION fz.count_writes()');
	}
	if ($tbl{ta} && $t->{kind} ne 'audit' && chance(0.5))
	{
		sql_do(q{CREATE OR REPLACE FUNCTION fz.audit() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO fz.ta (tbl, op) VALUES (TG_TABLE_NAME, TG_OP);
	RETURN NULL;
END $f$});
		sql_do('CREATE TRIGGER a_audit AFTER INSERT OR UPDATE OR DELETE ON ' . qname($t) . ' FOR EACH ROW EXECUTE FUNCTION fz.audit()');
		$t->{audited} = 1;
	}
	$t->{seqs} = [];
	for my $c (@{ $t->{cols} })
	{
		next unless $c->{gen};
		my $s = sql_one('SELECT pg_catalog.pg_get_serial_sequence($1, $2)', [qname($t), $c->{name}]);
		push @{ $t->{seqs} }, $s if defined $s;
	}
	push @tables, $t;
	$tbl{ $t->{name} } = $t;
}

sub track_table
{
	my ($t) = @_;
	return if $GENONLY;
	sql_do('SELECT rollback.track($1::regclass)', [qname($t)]);
}

######################################################################
# Row generation

# columns we supply on INSERT, and a row of values for them
sub insert_cols
{
	my ($t) = @_;
	return grep { !($_->{gen}) } @{ $t->{cols} };
}

my @parent_ids_cache;

sub parent_ids
{
	return map { $_->[0] } @{ sql_rows('SELECT id FROM fz.tp ORDER BY id') };
}

sub gen_key_values
{
	my ($t) = @_;
	my %v;
	if ($t->{kind} eq 'intpk' || $t->{kind} eq 'parent' || $t->{kind} eq 'child')
	{
		$v{ $t->{keys}[0] } = new_counter_key($t);
	}
	elsif ($t->{kind} eq 'comppk')
	{
		$v{a} = rrange(-50, 50);
		$v{b} = 'k' . new_counter_key($t) . ralpha(rint(4));
	}
	elsif ($t->{kind} eq 'textpk')
	{
		$v{k} = 'key' . new_counter_key($t) . ralpha(rint(7));
	}
	elsif ($t->{kind} eq 'parted')
	{
		$v{id} = new_counter_key($t);
		$v{rg} = rint($t->{nparts});
	}
	return \%v;
}

sub gen_row
{
	my ($t, $cols, $pids, $keyvals) = @_;
	my $kv = $keyvals // (keyed($t) && !seq_key($t) ? gen_key_values($t) : {});
	my @vals;
	for my $c (@$cols)
	{
		if ($c->{role} eq 'key') { push @vals, $kv->{ $c->{name} }; }
		elsif ($c->{role} eq 'fk') { push @vals, (@$pids && !chance(0.15)) ? pick(@$pids) : undef; }
		elsif ($c->{role} eq 'part') { push @vals, rint($t->{nparts}); }
		else { push @vals, gen_value($c); }
	}
	return \@vals;
}

######################################################################
# Operations.  Each runs one statement (reinsert: two) and counts it.

sub pred
{
	my ($t) = @_;
	my $r = rint(100);
	if ($r < 45)
	{
		my $n = pick(30, 100, 250, 500, 800, 1024);
		return "(pg_catalog.hashtext(x::text || " . $dbh->quote(ralpha(4)) . ") & 1023) < $n";
	}
	if ($r < 75 && keyed($t))
	{
		my $keys = sql_rows('SELECT ' . join(', ', @{ $t->{keys} }) . ' FROM ' . qname($t) . ' ORDER BY ' . join(', ', @{ $t->{keys} }));
		return 'false' unless @$keys;
		my @pick = sample(rrange(1, 5), @$keys);
		if (@{ $t->{keys} } == 1)
		{
			return "x.$t->{keys}[0] IN (" . join(', ', map { $dbh->quote($_->[0]) } @pick) . ')';
		}
		return '(' . join(', ', map { "x.$_" } @{ $t->{keys} }) . ') IN (' .
			join(', ', map { '(' . join(', ', map { $dbh->quote($_) } @$_) . ')' } @pick) . ')';
	}
	if ($r < 87)
	{
		my @dc = data_cols($t);
		my $c = pick(@dc);
		return "x.$c->{name} IS " . pick('NULL', 'NOT NULL');
	}
	if ($r < 95)
	{
		# one particular row (and its duplicates)
		my $row = sql_one('SELECT x::text FROM ' . qname($t) . ' x ORDER BY pg_catalog.md5(x::text) LIMIT 1 OFFSET ' . rint(20));
		return 'false' unless defined $row;
		return 'x::text = ' . $dbh->quote($row);
	}
	return 'true';
}

# NOT EXISTS guard for parent rows referenced by children, where the FK
# would refuse the change
sub parent_guard
{
	my ($t, $action) = @_;
	return '' unless $t->{kind} eq 'parent' && $tbl{tc};
	my $rule = $action eq 'delete' ? $tbl{tc}{on_delete} : $tbl{tc}{on_update};
	return '' if $rule ne 'NO ACTION';
	return ' AND NOT EXISTS (SELECT 1 FROM fz.tc c WHERE c.pid = x.id)';
}

sub op_insert
{
	my ($t, $nrows) = @_;
	my @cols = insert_cols($t);
	my @pids = $t->{kind} eq 'child' ? parent_ids() : ();
	my (@binds, @tuples);
	for (1 .. $nrows)
	{
		my $row = gen_row($t, \@cols, \@pids);
		push @tuples, '(' . join(', ', map { push @binds, $_; '$' . scalar(@binds) } @$row) . ')';
	}
	my $sql = 'INSERT INTO ' . qname($t) . (@cols ? ' (' . join(', ', map { $_->{name} } @cols) . ')' : '');
	if (@cols) { $sql .= ' VALUES ' . join(', ', @tuples); }
	else { $sql .= ' DEFAULT VALUES'; }
	sql_do($sql, \@binds);
}

sub op_copy
{
	my ($t, $nrows) = @_;
	my @cols = insert_cols($t);
	return op_insert($t, 1) unless @cols;
	my @pids = $t->{kind} eq 'child' ? parent_ids() : ();
	my $sql = 'COPY ' . qname($t) . ' (' . join(', ', map { $_->{name} } @cols) . ') FROM STDIN';
	logsql($sql);
	if (!defined $dbh->do($sql)) { sql_error($sql); die "fatal\n"; }
	for (1 .. $nrows)
	{
		my $line = join("\t", map { copy_escape($_) } @{ gen_row($t, \@cols, \@pids) }) . "\n";
		print $LOG $line if $LOG;
		$dbh->pg_putcopydata($line);
	}
	print $LOG "\\.\n" if $LOG;
	if (!$dbh->pg_putcopyend()) { sql_error("$sql (end)"); die "fatal\n"; }
}

sub op_update
{
	my ($t) = @_;
	my @cand = grep { $_->{role} eq 'data' || $_->{role} eq 'fk' || $_->{role} eq 'part' } @{ $t->{cols} };
	my @set = sample(rrange(1, 3), @cand);
	my (@sets, @binds);
	my @pids;
	for my $c (@set)
	{
		if ($c->{role} eq 'part')
		{
			push @sets, "rg = (x.rg + " . rrange(1, $t->{nparts} - 1) . ") % $t->{nparts}";
			next;
		}
		if ($c->{role} eq 'fk')
		{
			@pids = parent_ids() unless @pids;
			push @binds, (@pids && chance(0.8)) ? pick(@pids) : undef;
			push @sets, "$c->{name} = \$" . scalar(@binds);
			next;
		}
		my $r = rint(100);
		if ($r < 50) { push @binds, gen_value($c); push @sets, "$c->{name} = \$" . scalar(@binds); }
		elsif ($r < 62) { push @sets, "$c->{name} = " . ($c->{notnull} ? safe_expr($c) : 'NULL'); }
		elsif ($r < 90) { push @sets, "$c->{name} = " . safe_expr($c); }
		else { push @sets, "$c->{name} = x.$c->{name}"; }
	}
	my $sql = 'UPDATE ' . qname($t) . ' AS x SET ' . join(', ', @sets) . ' WHERE ' . pred($t);
	sql_do($sql, \@binds);
}

sub key_updatable
{
	my ($t) = @_;
	return 0 unless keyed($t);
	return 0 if ($t->{keygen} // '') eq 'identity_always';
	return 1;
}

sub op_update_key
{
	my ($t) = @_;
	my @sets;
	if ($t->{kind} eq 'comppk')
	{
		@sets = pick(['a = x.a + 1', "b = x.b || 'u'"], ["b = 'r' || x.b"], ['a = -x.a', "b = x.b || '.'"]);
		@sets = @{ $sets[0] };
	}
	elsif ($t->{kind} eq 'textpk')
	{
		@sets = (pick("k = x.k || '.'", "k = 'z' || x.k", "k = x.k || ' '"));
	}
	elsif ($t->{kind} eq 'parted')
	{
		# id alone is unique (|id| mod 2^20), so any rg will do
		@sets = @{ pick(["rg = (x.rg + 1) % $t->{nparts}"], ['id = -x.id'], ['id = -x.id', "rg = (x.rg + 1) % $t->{nparts}"]) };
	}
	else
	{
		my $k = $t->{keys}[0];
		# |key| mod 2^20 stays unique: flip the sign or shift by 2^20
		@sets = (pick("$k = -x.$k", "$k = x.$k + CASE WHEN x.$k < 0 THEN -1048576 ELSE 1048576 END",
					  "$k = x.$k + CASE WHEN x.$k < 0 THEN -2097152 ELSE 2097152 END"));
	}
	# sometimes a data column too
	my @binds;
	if (chance(0.4))
	{
		my $c = pick(data_cols($t));
		push @binds, gen_value($c);
		push @sets, "$c->{name} = \$1";
	}
	my $sql = 'UPDATE ' . qname($t) . ' AS x SET ' . join(', ', @sets) . ' WHERE (' . pred($t) . ')' . parent_guard($t, 'update');
	sql_do($sql, \@binds);
}

sub op_delete
{
	my ($t) = @_;
	my $sql = 'DELETE FROM ' . qname($t) . ' AS x WHERE (' . pred($t) . ')' . parent_guard($t, 'delete');
	sql_do($sql);
}

sub op_upsert
{
	my ($t) = @_;
	my @cols = insert_cols($t);
	my $keys = sql_rows('SELECT ' . join(', ', @{ $t->{keys} }) . ' FROM ' . qname($t) . ' ORDER BY ' . join(', ', @{ $t->{keys} }));
	my @existing = sample(rrange(0, 3), @$keys);
	my @pids = $t->{kind} eq 'child' ? parent_ids() : ();
	my (@binds, @tuples);
	my @kvs = map { my $r = $_; my %h; @h{ @{ $t->{keys} } } = @$r; \%h } @existing;
	push @kvs, gen_key_values($t) for 1 .. rrange(@kvs ? 0 : 1, 3);
	for my $kv (shuffle(@kvs))
	{
		my $row = gen_row($t, \@cols, \@pids, $kv);
		push @tuples, '(' . join(', ', map { push @binds, $_; '$' . scalar(@binds) } @$row) . ')';
	}
	my @upd = grep { $_->{role} eq 'data' } @cols;
	my $action = (chance(0.25) || !@upd) ? 'DO NOTHING'
		: 'DO UPDATE SET ' . join(', ', map { "$_->{name} = EXCLUDED.$_->{name}" } sample(rrange(1, 3), @upd));
	my $sql = 'INSERT INTO ' . qname($t) . ' AS x (' . join(', ', map { $_->{name} } @cols) . ') VALUES ' . join(', ', @tuples) .
		' ON CONFLICT (' . join(', ', @{ $t->{keys} }) . ") $action";
	sql_do($sql, \@binds);
}

# delete some rows and insert rows with the same keys and new data
sub op_reinsert
{
	my ($t) = @_;
	my $keys = sql_rows('SELECT ' . join(', ', @{ $t->{keys} }) . ' FROM ' . qname($t) . ' ORDER BY ' . join(', ', @{ $t->{keys} }));
	return op_insert($t, 1) unless @$keys;
	my @pick = sample(rrange(1, 3), @$keys);
	my $kcols = '(' . join(', ', @{ $t->{keys} }) . ')';
	my $in = join(', ', map { '(' . join(', ', map { $dbh->quote($_) } @$_) . ')' } @pick);
	sql_do('DELETE FROM ' . qname($t) . " WHERE $kcols IN ($in)");
	$n_ops++;
	my @cols = grep { $_->{role} ne 'gen' } @{ $t->{cols} };
	my @pids = $t->{kind} eq 'child' ? parent_ids() : ();
	my (@binds, @tuples);
	for my $k (@pick)
	{
		my %h;
		@h{ @{ $t->{keys} } } = @$k;
		my $row = gen_row($t, \@cols, \@pids, \%h);
		push @tuples, '(' . join(', ', map { push @binds, $_; '$' . scalar(@binds) } @$row) . ')';
	}
	my $over = (grep { ($_->{gen} // '') eq 'identity_always' } @cols) ? ' OVERRIDING SYSTEM VALUE' : '';
	sql_do('INSERT INTO ' . qname($t) . ' (' . join(', ', map { $_->{name} } @cols) . ")$over VALUES " . join(', ', @tuples), \@binds);
}

# duplicate existing rows (tables whose key, if any, comes from a sequence)
sub op_insert_select
{
	my ($t) = @_;
	my @cols = grep { $_->{role} eq 'data' || $_->{role} eq 'fk' || $_->{role} eq 'part' } @{ $t->{cols} };
	my $c = join(', ', map { $_->{name} } @cols);
	sql_do('INSERT INTO ' . qname($t) . " ($c) SELECT $c FROM " . qname($t) . ' AS x WHERE ' . pred($t) .
		   ' ORDER BY pg_catalog.md5(x::text) LIMIT ' . rrange(1, 10));
}

# many rows at once, computed by the server, so that tables span many pages
sub op_bulk
{
	my ($t) = @_;
	my $n = rrange(200, 3000);
	my $salt = rint(1000);
	my @pids = $t->{kind} eq 'child' ? parent_ids() : ();
	my $base = $t->{ctr};
	my @cols = insert_cols($t);
	my @exprs;
	for my $c (@cols)
	{
		my $e;
		if ($c->{role} eq 'key')
		{
			$e = $c->{name} eq 'a' ? '(g % 50)' : $c->{name} eq 'b' ? "'k' || ($base + g) || 'b'"
				: $c->{name} eq 'k' ? "'key' || ($base + g) || 'q'" : $c->{name} eq 'rg' ? "(g % $t->{nparts})" : "($base + g)";
		}
		elsif ($c->{role} eq 'fk')
		{
			$e = @pids ? 'CASE WHEN g % 3 = 0 THEN NULL ELSE ' . pick(@pids) . ' END' : 'NULL';
		}
		elsif ($c->{role} eq 'part')
		{
			$e = "(g % $t->{nparts})";
		}
		else
		{
			my $ty = $c->{type};
			$e = $ty eq 'int' ? "((g * 7919 + $salt) % 200000 - 100000)"
				: $ty eq 'bigint' ? "((g::bigint * 1000003 + $salt) * 1000)"
				: $ty eq 'numeric' ? ($c->{prec} ? "pg_catalog.round(((g + $salt) % 97) / 7.0, $c->{scale})" : "((g + $salt) / 7.0)")
				: $ty eq 'text' ? "pg_catalog.md5((g + $salt)::text)"
				: $ty eq 'bytea' ? "pg_catalog.decode(pg_catalog.md5(g::text), 'hex')"
				: $ty eq 'jsonb' ? "pg_catalog.jsonb_build_object('g', g, 's', pg_catalog.md5(g::text))"
				: $ty eq 'timestamptz' ? "'2020-01-01 00:00:00+00'::timestamptz + g * interval '1 minute'"
				: $ty eq 'int[]' ? "ARRAY[g, g + $salt]"
				: "ARRAY[pg_catalog.md5(g::text), NULL]";
			$e = "CASE WHEN (g + $salt) % " . rrange(3, 10) . " = 0 THEN NULL ELSE $e END" unless $c->{notnull};
		}
		push @exprs, $e;
	}
	$t->{ctr} = $base + $n + 1;
	die "key counter overflow" if $t->{ctr} >= 1048576;
	sql_do('INSERT INTO ' . qname($t) . ' (' . join(', ', map { $_->{name} } @cols) . ') SELECT ' . join(', ', @exprs) .
		   " FROM pg_catalog.generate_series(1, $n) g");
}

sub op_truncate
{
	my ($t) = @_;
	my $restart = chance(0.3) ? ' RESTART IDENTITY' : '';
	my $sql;
	if ($t->{kind} eq 'parent')
	{
		$sql = pick('TRUNCATE fz.tp' . $restart . ' CASCADE', 'TRUNCATE fz.tc, fz.tp' . $restart);
	}
	elsif (chance(0.3))
	{
		my @others = grep { $_->{kind} ne 'parent' && $_->{kind} ne 'child' && $_ != $t && !$_->{noops} } @tables;
		my @list = ($t, sample(1, @others));
		$sql = 'TRUNCATE ' . join(', ', map { qname($_) } @list) . $restart;
	}
	else
	{
		$sql = 'TRUNCATE TABLE ' . qname($t) . $restart;
	}
	sql_do($sql);
}

# a child row pointing at a parent that may not exist: may fail (23503)
sub op_risky_child
{
	my $t = $tbl{tc};
	my @cols = insert_cols($t);
	my $row = gen_row($t, \@cols, [rrange(1, 3000)]);
	my $i = 0;
	sql_do('INSERT INTO fz.tc (' . join(', ', map { $_->{name} } @cols) . ') VALUES (' . join(', ', map { '$' . ++$i } @cols) . ')',
		   $row, ['23503']);
}

# one statement on a random table of the list (default: all).  $concurrent:
# run by the second session while the first may read every table, so nothing
# that takes an ACCESS EXCLUSIVE lock.
sub one_op
{
	my ($list, $concurrent) = @_;
	my @cand = grep { !$_->{noops} } @{ $list // \@tables };
	return unless @cand;
	my $t = pick(@cand);
	my $kind = pick_w(
		[20, 'insert'], [10, 'insert_multi'], [8, 'copy'], [20, 'update'],
		[key_updatable($t) ? 8 : 0, 'update_key'], [12, 'delete'],
		[keyed($t) && !seq_key($t) ? 5 : 0, 'upsert'],
		[keyed($t) && $t->{kind} ne 'parent' ? 4 : 0, 'reinsert'],
		[!keyed($t) || seq_key($t) ? 5 : 0, 'insert_select'],
		[$concurrent ? 0 : 2, 'truncate'], [3, 'bulk'],
		[$tbl{tc} && (!$list || grep { $_ == $tbl{tc} } @$list) ? 2 : 0, 'risky']);
	print STDERR "op $n_ops: $kind $t->{name}\n" if $VERBOSE;
	if ($kind eq 'insert') { op_insert($t, 1); }
	elsif ($kind eq 'insert_multi') { op_insert($t, rrange(2, 15)); }
	elsif ($kind eq 'copy') { op_copy($t, rrange(1, 25)); }
	elsif ($kind eq 'update') { op_update($t); }
	elsif ($kind eq 'update_key') { op_update_key($t); }
	elsif ($kind eq 'delete') { op_delete($t); }
	elsif ($kind eq 'upsert') { op_upsert($t); }
	elsif ($kind eq 'reinsert') { op_reinsert($t); }
	elsif ($kind eq 'insert_select') { op_insert_select($t); }
	elsif ($kind eq 'truncate') { op_truncate($t); }
	elsif ($kind eq 'bulk') { op_bulk($t); }
	elsif ($kind eq 'risky') { op_risky_child(); }
	$n_ops++;
}

sub op_vacuum
{
	my $t = pick(grep { !$_->{noops} } @tables);
	# VACUUM (FREEZE) is refused on tables with points (ddl.c): only before the first one
	# VACUUM (FREEZE), VACUUM FULL and CLUSTER are refused on tables with
	# points (ddl.c: they freeze rows written after a point)
	my $v = pick('VACUUM', 'VACUUM', 'VACUUM FULL', 'ANALYZE', 'CLUSTER', 'VACUUM fma0', 'VACUUM (FREEZE)');
	$v = 'VACUUM' if $SKIP{freeze} && $v eq 'VACUUM fma0';
	$v = 'VACUUM FULL' if $v eq 'CLUSTER' && !keyed($t);
	if ($v eq 'CLUSTER') { sql_do('CLUSTER ' . qname($t) . " USING $t->{name}_pkey", [], ['55000']); }
	elsif ($v eq 'VACUUM fma0')
	{
		sql_do('SET vacuum_freeze_min_age = 0');
		sql_do('VACUUM ' . qname($t));
		sql_do('RESET vacuum_freeze_min_age');
	}
	else { sql_do("$v " . qname($t), [], ['55000']); }
}

# a transaction of a few operations, savepoints, and a commit or rollback
sub txn
{
	txn_begin();
	txn_body();
	if (chance(0.8)) { txn_commit(); } else { txn_rollback(); }
}

# a few operations with savepoints, inside an open transaction
sub txn_body
{
	my @sp;
	my $spn = 0;
	my $n = rrange(1, 6);
	my $done = 0;
	while ($done < $n)
	{
		my $r = rint(100);
		if ($r < 15)
		{
			push @sp, 's' . ++$spn;
			sql_do("SAVEPOINT $sp[-1]");
		}
		elsif (@sp && $r < 25)
		{
			sql_do("ROLLBACK TO SAVEPOINT $sp[-1]");
			pop @sp if chance(0.5) && sql_do("RELEASE SAVEPOINT $sp[-1]");
		}
		elsif (@sp && $r < 33)
		{
			sql_do("RELEASE SAVEPOINT " . pop @sp);
		}
		else
		{
			one_op();
			$done++;
		}
	}
}

# a point taken at the start of a transaction that then changes the tables
# (its own later changes are not in the point); a rollback takes it back
sub point_txn
{
	txn_begin();
	make_point();
	my $p = $points[-1];
	txn_body();
	if (chance(0.8)) { txn_commit(); }
	else
	{
		txn_rollback();
		print STDERR "point $p->{name} rolled back\n" if $VERBOSE;
		@points = grep { $_ != $p } @points;
	}
}

# a session on database D (created if missing, so that a replay works on its own)
sub connect_db { return connect_session($DBNAME, 1); }

######################################################################
# Points and copies


sub seq_state
{
	my %s;
	for my $t (@tables)
	{
		for my $s (@{ $t->{seqs} })
		{
			$s{$s} = sql_one("SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM $s");
		}
	}
	return \%s;
}

sub copy_tables
{
	my ($tag) = @_;
	for my $t (@tables)
	{
		sql_do("CREATE TABLE fz_copy.$t->{name}_$tag AS SELECT * FROM " . qname($t));
	}
}

sub make_point
{
	$npoint++;
	my $name = "p$npoint";
	my @cover = @tables;
	if (@tables > 2 && chance(0.2))
	{
		# a point over some of the tables; the parent and the child go together
		my @units = ([grep { $_->{kind} ne 'parent' && $_->{kind} ne 'child' } @tables], [grep { $_->{kind} eq 'parent' || $_->{kind} eq 'child' } @tables]);
		@units = ((map { [$_] } @{ $units[0] }), @{ $units[1] } ? ($units[1]) : ());
		@cover = map { @$_ } sample(rrange(1, @units - 1), @units);
	}
	print STDERR "point $name" . (@cover < @tables ? ' (' . join(',', map { $_->{name} } @cover) . ')' : '') . "\n" if $VERBOSE;
	# a second session whose transaction is open while the point is taken:
	# it writes the tables the point does not cover before, the covered
	# ones after; its changes are not in the point
	my @uncovered = grep { my $t = $_; !grep { $_ == $t } @cover } @tables;
	my $concurrent = @uncovered && !$in_txn && chance(0.5);
	# (its audit rows would make the point wait for it)
	$concurrent = 0 if (grep { $_->{audited} } @uncovered) && grep { $_->{noops} } @cover;
	if ($concurrent)
	{
		print STDERR "  second session writes " . join(',', map { $_->{name} } @uncovered) . "\n" if $VERBOSE;
		$dbh2 //= connect_db();
		local $dbh = $dbh2;
		local $in_txn = 0;
		txn_begin();
		one_op(\@uncovered, 1) for 1 .. rrange(1, 3);
	}
	if (@cover < @tables)
	{
		sql_do('SELECT rollback.create_point($1, ARRAY[' . join(', ', map { $dbh->quote(qname($_)) } @cover) . ']::regclass[])', [$name]) unless $GENONLY;
	}
	else
	{
		sql_do('SELECT rollback.create_point($1)', [$name]) unless $GENONLY;
	}
	copy_tables($name);
	push @points, { name => $name, tag => $name, tables => [map { $_->{name} } @cover], seqs => seq_state() };
	if ($concurrent)
	{
		local $dbh = $dbh2;
		local $in_txn = 1;
		one_op(\@cover, 1) for 1 .. rrange(1, 3);
		if (chance(0.8)) { txn_commit(); } else { txn_rollback(); }
	}
}

# drop a point (never the only one); the others must keep the images they need
sub drop_point
{
	my (@keep) = @_;
	my @cand = grep { my $p = $_; !grep { $_ == $p } @keep } @points;
	return unless @points > 1 && @cand;
	my $p = pick(@cand);
	print STDERR "drop point $p->{name}\n" if $VERBOSE;
	sql_do('SELECT rollback.drop_point($1)', [$p->{name}]) unless $GENONLY;
	@points = grep { $_ != $p } @points;
}

sub point_covers
{
	my ($p, $tname) = @_;
	return scalar grep { $_ eq $tname } @{ $p->{tables} };
}

######################################################################
# Checks

# compare two row sets given as queries of one text column x
sub compare_sets
{
	my ($what, $expected_sql, $actual_sql) = @_;
	$n_checks++;
	my $with = "WITH e AS MATERIALIZED ($expected_sql), a AS MATERIALIZED ($actual_sql)";
	my $r = sql_rows("$with SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM a),"
					 . " (SELECT count(*) FROM (SELECT x FROM e EXCEPT ALL SELECT x FROM a) s),"
					 . " (SELECT count(*) FROM (SELECT x FROM a EXCEPT ALL SELECT x FROM e) s)");
	return 0 unless $r;
	my ($ne, $na, $eonly, $aonly) = @{ $r->[0] };
	return 1 if $eonly == 0 && $aonly == 0;
	my $d = sql_rows("$with (SELECT 'expected only', pg_catalog.left(x, 240) FROM (SELECT x FROM e EXCEPT ALL SELECT x FROM a) s ORDER BY 2 LIMIT 4)"
					 . " UNION ALL (SELECT 'actual only', pg_catalog.left(x, 240) FROM (SELECT x FROM a EXCEPT ALL SELECT x FROM e) s ORDER BY 2 LIMIT 4)") // [];
	mismatch($what, "expected $ne rows, got $na: $eonly rows only in the expected copy, $aonly rows only in the actual result",
			 map { "$_->[0]: $_->[1]" } @$d);
	return 0;
}

sub copy_sql { my ($t, $tag) = @_; return "SELECT r::text AS x FROM fz_copy.$t->{name}_$tag r"; }
sub table_sql { my ($t) = @_; return 'SELECT r::text AS x FROM ' . qname($t) . ' r'; }
sub as_of_sql { my ($t, $p) = @_; return 'SELECT r::text AS x FROM rollback.as_of(NULL::' . qname($t) . ', ' . $dbh->quote($p->{name}) . ') r'; }

sub check_as_of
{
	my ($p, $when) = @_;
	for my $t (@tables)
	{
		next unless point_covers($p, $t->{name});
		compare_sets("as_of " . qname($t) . " at $p->{name} ($when)", copy_sql($t, $p->{tag}), as_of_sql($t, $p));
	}
}

# the tables a point covers, as the catalog says, against ours
sub check_coverage
{
	my ($p) = @_;
	$n_checks++;
	my $r = sql_rows("SELECT pg_catalog.replace(pt.relid::text, 'fz.', '')"
					 . " FROM rollback.point_table pt JOIN rollback.point p ON p.id = pt.point_id WHERE p.name = \$1", [$p->{name}]);
	return unless $r;
	my $got = join(',', sort map { $_->[0] } @$r);
	my $want = join(',', sort map { relnames($tbl{$_}) } @{ $p->{tables} });
	mismatch("point $p->{name} covers tables [$got], expected [$want]") if $got ne $want;
}

# diff(t, p) against what the copy and the table say
sub check_diff
{
	my ($p, $t) = @_;
	return if $SKIP{diff};
	$n_checks++;
	my $got = sql_rows('SELECT op, count(*) FROM rollback.diff($1::regclass, $2) GROUP BY op ORDER BY op', [qname($t), $p->{name}]);
	return unless $got;
	my %g = (insert => 0, update => 0, delete => 0);
	$g{ $_->[0] } = $_->[1] for @$got;
	my $copy = "fz_copy.$t->{name}_$p->{tag}";
	my $exp;
	if (keyed($t))
	{
		my $k = join(', ', @{ $t->{keys} });
		$exp = sql_rows("WITH o AS (SELECT $k, pg_catalog.to_jsonb(c) AS j FROM $copy c), n AS (SELECT $k, pg_catalog.to_jsonb(t) AS j FROM " . qname($t) . " t)"
						. " SELECT count(*) FILTER (WHERE o.j IS NULL), count(*) FILTER (WHERE o.j IS NOT NULL AND n.j IS NOT NULL AND o.j <> n.j), count(*) FILTER (WHERE n.j IS NULL)"
						. " FROM o FULL JOIN n USING ($k)");
	}
	else
	{
		$exp = sql_rows("WITH o AS (SELECT pg_catalog.to_jsonb(c) AS j FROM $copy c), n AS (SELECT pg_catalog.to_jsonb(t) AS j FROM " . qname($t) . " t)"
						. " SELECT (SELECT count(*) FROM (SELECT j FROM n EXCEPT ALL SELECT j FROM o) s), 0,"
						. " (SELECT count(*) FROM (SELECT j FROM o EXCEPT ALL SELECT j FROM n) s)");
	}
	return unless $exp;
	my ($ei, $eu, $ed) = @{ $exp->[0] };
	if ($g{insert} != $ei || $g{update} != $eu || $g{delete} != $ed || keys %g != 3)
	{
		mismatch("diff " . qname($t) . " since $p->{name}",
				 "expected insert $ei, update $eu, delete $ed; got " . join(', ', map { "$_ $g{$_}" } sort keys %g));
	}
}

# the rollback.points view lists our points with the tables they cover
sub check_points_view
{
	$n_checks++;
	my $r = sql_rows('SELECT name, pg_catalog.cardinality(tables), rows_captured, store_bytes FROM rollback.points ORDER BY id');
	return unless $r;
	my %v = map { $_->[0] => $_ } @$r;
	for my $p (@points)
	{
		my $row = $v{ $p->{name} };
		if (!$row) { mismatch("rollback.points does not list point $p->{name}"); next; }
		my $want = () = map { relnames($tbl{$_}) } @{ $p->{tables} };
		mismatch("rollback.points says point $p->{name} covers $row->[1] tables, expected $want") if $row->[1] != $want;
		mismatch("rollback.points: point $p->{name} has rows_captured $row->[2], store_bytes $row->[3]")
			if !defined $row->[2] || $row->[2] < 0 || !defined $row->[3] || $row->[3] < 0;
	}
}

sub check_point_all
{
	my ($when) = @_;
	for my $p (@points) { check_as_of($p, $when); }
}

sub max_point_id { return sql_one('SELECT coalesce(max(id), 0) FROM rollback.point'); }

sub restore_round
{
	my ($r) = @_;
	# target: the newest point, an older one, or the point a restore took
	my $target = ($r == 1 && chance(0.5)) ? $points[-1] : pick(@points);
	drop_point($target) if chance(0.2);
	my @restorable = grep { point_covers($target, $_->{name}) } @tables;
	my @subset;
	if (chance(0.25))
	{
		my @free = grep { $_->{kind} ne 'parent' && $_->{kind} ne 'child' } @restorable;
		@subset = sample(rrange(1, 2), @free) if @free;
	}
	my @restored = @subset ? @subset : @restorable;
	print STDERR "restore $r to $target->{name}" . (@subset ? ' (' . join(',', map { $_->{name} } @subset) . ')' : '') . "\n" if $VERBOSE;

	check_diff($target, $_) for @restorable;

	my $tag = "r$r";
	$phase = 'ops';
	copy_tables($tag);
	my $pre_seqs = seq_state();
	$phase = 'check';

	my $tables_arg = @subset ? 'ARRAY[' . join(', ', map { $dbh->quote(qname($_)) } @subset) . ']::regclass[]' : 'NULL';
	my $q = "SELECT tbl::text, rows_deleted, rows_restored FROM rollback.restore(\$1, $tables_arg, %s) ORDER BY 1";
	my $before_id = max_point_id();
	my $dry = sql_rows(sprintf($q, 'true'), [$target->{name}]);
	return unless $dry;
	# a dry run changes nothing
	$n_checks++;
	my $after_dry = max_point_id();
	mismatch("dry run of restore to $target->{name} created a point") if ($after_dry // -1) != ($before_id // -2);
	compare_sets("table " . qname($_) . " after a dry run of restore to $target->{name}", copy_sql($_, $tag), table_sql($_)) for @tables;

	# a restore rolled back changes nothing
	my $mode = pick_w([65, 'plain'], [15, 'rolled back'], [20, 'then changes']);
	print STDERR "  restore mode: $mode\n" if $VERBOSE;
	if ($mode eq 'rolled back')
	{
		txn_begin();
		my $rb = sql_rows(sprintf($q, 'false'), [$target->{name}]);
		compare_sets("table " . qname($_) . " inside a transaction after restore to $target->{name}", copy_sql($_, $target->{tag}), table_sql($_))
			for $rb ? @restored : ();
		txn_rollback();
		return unless $rb;
		$n_checks++;
		my $after = max_point_id();
		mismatch("restore to $target->{name} rolled back left a point behind") if ($after // -1) != ($before_id // -2);
		compare_sets("table " . qname($_) . " after restore to $target->{name} rolled back", copy_sql($_, $tag), table_sql($_)) for @tables;
		# sequences too: the rows are back, so a sequence left at the point's
		# value would hand out keys that are taken
		my $now = seq_state();
		for my $sq (sort keys %$pre_seqs)
		{
			next if $SKIP{seqtxn};
			$n_checks++;
			mismatch("sequence $sq after restore to $target->{name} rolled back: next value $now->{$sq}, expected $pre_seqs->{$sq}")
				if ($now->{$sq} // -1) != ($pre_seqs->{$sq} // -2);
		}
		$pre_seqs = $now;
		$mode = 'plain';
	}
	my $real;
	if ($mode eq 'then changes')
	{
		# the restoring transaction goes on changing the tables: the point the
		# restore took must still see the tables as they were before it
		txn_begin();
		$real = sql_rows(sprintf($q, 'false'), [$target->{name}]);
		if (!$real) { txn_rollback(); return; }
		compare_sets("table " . qname($_) . " inside a transaction after restore to $target->{name}", copy_sql($_, $target->{tag}), table_sql($_))
			for @restored;
		$phase = 'ops';
		txn_body();
		$phase = 'check';
		txn_commit();
	}
	else
	{
		$real = sql_rows(sprintf($q, 'false'), [$target->{name}]);
	}
	return unless $real;
	print STDERR "  restored: ", join('; ', map { join(' ', map { $_ // 'NULL' } @$_) } @$real), "\n" if $VERBOSE;
	$n_checks++;
	my $fd = join('; ', map { join(' ', map { $_ // 'NULL' } @$_) } @$dry);
	my $fr = join('; ', map { join(' ', map { $_ // 'NULL' } @$_) } @$real);
	mismatch("restore to $target->{name}: dry run says [$fd], the restore says [$fr]") if $fd ne $fr;

	# the point the restore took
	my $new = sql_rows('SELECT name FROM rollback.point WHERE id > $1 ORDER BY id', [$before_id]);
	$n_checks++;
	if (!$new || @$new != 1)
	{
		mismatch("restore to $target->{name} took " . ($new ? scalar @$new : '?') . " points, expected 1");
	}
	else
	{
		my $covered = sql_rows("SELECT pg_catalog.replace(pt.relid::text, 'fz.', '') FROM rollback.point_table pt JOIN rollback.point p ON p.id = pt.point_id"
							   . " WHERE p.name = \$1 ORDER BY 1", [$new->[0][0]]) // [];
		my %cov = map { $_->[0] => 1 } @$covered;
		my @covt = grep { my $t = $_; !grep { !$cov{$_} } relnames($t) } @tables;
		for my $t (@restored)
		{
			$n_checks++;
			mismatch("the point $new->[0][0] taken by restore to $target->{name} does not cover " . qname($t))
				unless grep { $_ == $t } @covt;
		}
		push @points, { name => $new->[0][0], tag => $tag, tables => [map { $_->{name} } @covt], seqs => $pre_seqs, auto => 1 };
	}

	# tables: restored ones equal the copy at the target, the others are unchanged
	for my $t ($mode eq 'plain' ? @tables : ())
	{
		if (grep { $_ == $t } @restored)
		{
			compare_sets("table " . qname($t) . " after restore to $target->{name}", copy_sql($t, $target->{tag}), table_sql($t));
			for my $s (@{ $t->{seqs} })
			{
				$n_checks++;
				my $now = sql_one("SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM $s");
				my $want = $target->{seqs}{$s};
				mismatch("sequence $s after restore to $target->{name}: next value $now, expected $want")
					if defined $now && defined $want && $now != $want;
			}
		}
		else
		{
			compare_sets("table " . qname($t) . " (not restored) after restore to $target->{name}", copy_sql($t, $tag), table_sql($t));
		}
	}
	# time travel survives the restore
	check_point_all("after restore $r to $target->{name}");
}

######################################################################
# Setup and cleanup

sub cleanup
{
	if ($GENONLY)
	{
		sql_do('DROP SCHEMA IF EXISTS fz CASCADE');
		sql_do('DROP SCHEMA IF EXISTS fz_copy CASCADE');
		return;
	}
	sql_do("DELETE FROM rollback.tracked_schema WHERE nspname = 'fz'");
	my $pts = sql_rows("SELECT p.name FROM rollback.point p WHERE p.name ~ '^p[0-9]+\$' OR NOT EXISTS ("
					   . " SELECT 1 FROM rollback.point_table pt JOIN pg_catalog.pg_class c ON c.oid = pt.relid"
					   . " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE pt.point_id = p.id AND n.nspname <> 'fz')"
					   . " ORDER BY p.id DESC");
	sql_do('SELECT rollback.drop_point($1)', [$_->[0]]) for @$pts;
	my $tr = sql_rows("SELECT t.relid::oid FROM rollback.tracked_table t JOIN pg_catalog.pg_class c ON c.oid = t.relid"
					  . " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'fz' AND t.parent IS NULL ORDER BY 1");
	sql_do('SELECT rollback.untrack($1::oid::regclass, true)', [$_->[0]]) for @$tr;
	sql_do('DROP SCHEMA IF EXISTS fz CASCADE');
	sql_do('DROP SCHEMA IF EXISTS fz_copy CASCADE');
}

sub setup_tables
{
	$track_mode = pick('explicit', 'schema_first', 'schema_later');
	$track_mode = 'explicit' if $GENONLY;
	my @kinds = map { pick('intpk', 'intpk', 'comppk', 'textpk', 'nokey', 'nokey', 'parted') } 1 .. rrange(2, 4);
	my @specs;
	my $i = 0;
	push @specs, make_table_spec('ta', 'audit') if chance(0.4);
	push @specs, make_table_spec('t' . ++$i, $_) for @kinds;
	push @specs, make_table_spec('tp', 'parent'), make_table_spec('tc', 'child');

	if ($track_mode eq 'schema_first')
	{
		$n_checks++;
		my $n = sql_one("SELECT rollback.track_schema('fz')");
		mismatch("track_schema on an empty schema returned $n") if $n != 0;
		$schema_tracked = 1;
	}
	my $later = rrange(0, scalar @specs);	# schema_later: tables created before track_schema
	my @filled;
	for my $k (0 .. $#specs)
	{
		my $t = $specs[$k];
		if ($track_mode eq 'schema_later' && $k == $later)
		{
			$n_checks++;
			my $n = sql_one("SELECT rollback.track_schema('fz')");
			my $want = 0;
			$want += ntracked($_) for @tables;
			mismatch("track_schema returned $n, expected $want") if $n != $want;
			$schema_tracked = 1;
		}
		create_table($t);
		# some tables get rows before they are tracked
		my $early = chance(0.3);
		fill($t) if $early;
		track_table($t) if $track_mode eq 'explicit' && chance(0.5) || ($track_mode eq 'schema_first' && chance(0.2));
		push @filled, $t if !$early;
	}
	if ($track_mode eq 'schema_later' && $later == @specs)
	{
		$n_checks++;
		my $n = sql_one("SELECT rollback.track_schema('fz')");
		my $want = 0;
		$want += ntracked($_) for @tables;
		mismatch("track_schema returned $n, expected $want") if $n != $want;
		$schema_tracked = 1;
	}
	track_table($_) for grep { $track_mode eq 'explicit' } shuffle(@tables);	# idempotent for the ones done already
	fill($_) for @filled;
	check_tracked();
}

sub check_tracked
{
	return if $GENONLY;
	for my $t (@tables)
	{
		for my $r (relnames($t))
		{
			$n_checks++;
			my $n = sql_one('SELECT count(*) FROM rollback.tracked_table WHERE relid = $1::regclass AND store IS NOT NULL', ["fz.$r"]);
			mismatch("fz.$r is not tracked (mode $track_mode)") if !$n;
		}
	}
}

sub fill
{
	my ($t) = @_;
	return if $t->{noops};
	my $n = rrange(0, 40);
	while ($n > 0)
	{
		my $k = $n < 15 ? $n : rrange(1, 15);
		if (chance(0.5)) { op_copy($t, $k); } else { op_insert($t, $k); }
		$n -= $k;
	}
}

sub create_mid_table
{
	my $name = 't' . (1 + scalar grep { $_->{name} =~ /^t\d+$/ } @tables);
	my $t = make_table_spec($name, pick('intpk', 'nokey', 'textpk'));
	$t->{dropcol} = -1;
	print STDERR "mid-run table $name\n" if $VERBOSE;
	create_table($t);
	track_table($t) unless $schema_tracked;
	return fill($t) if $GENONLY;
	$n_checks++;
	my $n = sql_one('SELECT count(*) FROM rollback.tracked_table WHERE relid = $1::regclass AND store IS NOT NULL', [qname($t)]);
	mismatch(qname($t) . " created after track_schema is not tracked") if !$n;
	fill($t);
}

######################################################################
# Main

rng_seed($SEED, 0x9E3779B97F4A7C15);
open_log("-- fuzz.pl --seed $SEED --ops $OPS");

my $ok = eval {
	$dbh = connect_db();
	sql_do('CREATE EXTENSION IF NOT EXISTS rollback');
	cleanup();
	sql_do('CREATE SCHEMA fz');
	sql_do('CREATE SCHEMA fz_copy');
	setup_tables();

	$phase = 'ops';
	sql_do('VACUUM (FREEZE) ' . qname($_)) for grep { chance(0.3) } @tables;
	make_point() if chance(0.4);
	my $mid_at = chance(0.35) ? rint($OPS) : -1;
	while ($n_ops < $OPS)
	{
		if (chance(0.12)) { if (chance(0.25)) { point_txn(); } else { make_point(); } }
		if ($mid_at >= 0 && $n_ops >= $mid_at)
		{
			create_mid_table();
			$mid_at = -1;
		}
		op_vacuum() if chance(0.04);
		drop_point() if chance(0.03);
		if (chance(0.4)) { one_op(); } else { txn(); }
	}
	make_point() while @points < 2;
	make_point() if chance(0.2);	# a point with no change after it

	die "gen-only\n" if $GENONLY;
	$phase = 'check';
	check_points_view();
	for my $p (@points)
	{
		check_coverage($p);
		check_as_of($p, 'before restores');
		check_diff($p, $_) for grep { point_covers($p, $_->{name}) } @tables;
	}
	my $rounds = rrange(2, 4);
	for my $r (1 .. $rounds)
	{
		if ($r > 1 && chance(0.5))
		{
			# more changes, and maybe a point, between restores
			$phase = 'ops';
			for (1 .. rrange(2, 8)) { if (chance(0.5)) { one_op(); } else { txn(); } }
			make_point() if chance(0.5);
			$phase = 'check';
		}
		restore_round($r);
	}
	1;
};
if (!$ok)
{
	seed_died($@, "gen-only\n");
	$dbh2->do('ROLLBACK') if $dbh2;
}

my $user_points = grep { !$_->{auto} } @points;
print "seed $SEED: ops $n_ops, points $user_points, checks $n_checks, mismatches $n_mismatch\n";
print "seed $SEED: $n_errors unexpected SQL errors\n" if $n_errors;
my $fail = $n_mismatch || $n_errors;
if (!$fail && !$KEEP)
{
	$phase = 'cleanup';
	eval { cleanup(); 1 } or print "seed $SEED: cleanup failed (ignored)\n";
}
$dbh2->disconnect if $dbh2;
$dbh->disconnect;
close $LOG if $LOG;
exit($fail ? 1 : 0);
