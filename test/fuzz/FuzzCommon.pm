#
# FuzzCommon.pm: what the seeded fuzzers test/fuzz/fuzz.pl and
# test/fuzz/fuzz_ddl.pl share: the command line, the PRNG, the database
# session (every statement goes through sql_do / sql_rows, which log it as
# a psql script and report errors), and the reports of mismatches.
#
#   use FindBin;
#   use lib $FindBin::Bin;
#   use FuzzCommon;
#
# The state is package variables that the scripts import and set:
# $SEEDNAME, how messages name the run ("seed N", "ddl seed N"), $REPLAY,
# the command that replays it, $phase, the phase messages name, and the
# options.  $dbh and $in_txn are imported as globs (*dbh, *in_txn), so that
# a script's local $dbh (a second session) is the $dbh the module uses too.

package FuzzCommon;

use strict;
use warnings;
no warnings "portable";
use DBI;
use DBD::Pg;
use Getopt::Long;
use Digest::MD5 qw(md5_hex);
use Exporter qw(import);

our @EXPORT = qw(
	$SEED $DBNAME $LOGFILE $KEEP $VERBOSE $SEEDNAME $REPLAY $LOG *dbh *in_txn $phase $n_mismatch $n_errors $log_line
	parse_options usage open_log
	rng_seed rng_next rint rrange chance pick pick_w sample shuffle rchars md5chain
	logsql short sql_error sql_do sql_rows sql_one txn_begin txn_commit txn_rollback dbi_connect connect_session
	mismatch seed_died
);

binmode STDOUT, ':encoding(UTF-8)';
binmode STDERR, ':encoding(UTF-8)';
$| = 1;

######################################################################
# Command line

our ($SEED, $DBNAME, $LOGFILE, $KEEP, $VERBOSE) = (undef, undef, undef, 0, 0);
our $SEEDNAME;			# "seed N" or "ddl seed N": how messages name the run
our $REPLAY;			# the command that replays the run, for messages
my $USAGE;

# Read the options both scripts take (--seed N, --dbname D, --log FILE,
# --keep, --verbose) and the script's own (%own: GetOptions specs, with
# the variables they set); $usage: the usage line, for a wrong command line.
sub parse_options
{
	my ($usage, %own) = @_;
	$USAGE = $usage;
	GetOptions(
		'seed=i'   => \$SEED,
		'dbname=s' => \$DBNAME,
		'log=s'    => \$LOGFILE,
		'keep'     => \$KEEP,
		'verbose+' => \$VERBOSE,
		%own,
	) or usage();
}

# the command line, on a wrong one
sub usage
{
	print STDERR "usage: $USAGE\n";
	exit 2;
}

######################################################################
# PRNG: xorshift64*, with the 64-bit multiply done in 32-bit halves so that
# Perl never falls back to floating point.  The generators draw from it,
# never from Perl's rand() or hash order, so that a seed replays exactly.

my $M32 = 0xFFFFFFFF;
my $RNG;

# 64-bit product, modulo 2^64
sub mul64
{
	my ($a, $b) = @_;
	my ($al, $ah) = ($a & $M32, $a >> 32);
	my ($bl, $bh) = ($b & $M32, $b >> 32);
	my $lo = $al * $bl;		# < 2^64: exact as an unsigned integer
	my $cross = (($ah * $bl) & $M32) + (($al * $bh) & $M32);
	my $hi = (($lo >> 32) + $cross) & $M32;
	return ($hi << 32) | ($lo & $M32);
}

# the next 64-bit number of the stream
sub rng_next
{
	my $x = $RNG;
	$x ^= $x >> 12;
	$x ^= $x << 25;
	$x ^= $x >> 27;
	$RNG = $x;
	return mul64($x, 0x2545F4914F6CDD1D);
}

# start the stream from a seed, scrambled (splitmix-style; never zero)
# after an xor with $salt: each script has its own salt, so that the two do
# not draw the same stream for a seed
sub rng_seed
{
	my ($s, $salt) = @_;
	my $z = mul64(($s ^ $salt), 0xBF58476D1CE4E5B9);
	$z ^= $z >> 31;
	$z = mul64($z, 0x94D049BB133111EB);
	$z ^= $z >> 29;
	$RNG = $z || 0x853C49E6748FEA9B;
	rng_next() for 1 .. 4;
}

# integer in [0, n)
sub rint { my ($n) = @_; return 0 if $n <= 1; return (rng_next() >> 11) % $n; }
# integer in [a, b]
sub rrange { my ($a, $b) = @_; return $a + rint($b - $a + 1); }
# true with probability p
sub chance { my ($p) = @_; return ((rng_next() >> 11) / 9007199254740992.0) < $p; }
# one element of a list (undef for an empty one)
sub pick { return undef unless @_; return $_[rint(scalar @_)]; }
# weighted choice: pick_w([w1, v1], [w2, v2], ...)
sub pick_w
{
	my $tot = 0;
	$tot += $_->[0] for @_;
	my $r = rint($tot);
	for (@_) { return $_->[1] if $r < $_->[0]; $r -= $_->[0]; }
	return $_[-1][1];
}
# k distinct elements of a list, in list order
sub sample
{
	my ($k, @l) = @_;
	my @idx = (0 .. $#l);
	for my $i (reverse 1 .. $#idx) { my $j = rint($i + 1); @idx[$i, $j] = @idx[$j, $i]; }
	my @s = sort { $a <=> $b } @idx[0 .. ($k < @l ? $k : scalar @l) - 1];
	return @l[@s];
}
# the list in random order
sub shuffle
{
	my @l = @_;
	for my $i (reverse 1 .. $#l) { my $j = rint($i + 1); @l[$i, $j] = @l[$j, $i]; }
	return @l;
}

# a random string of n characters of a set (an array ref)
sub rchars { my ($set, $n) = @_; return join('', map { $set->[rint(scalar @$set)] } 1 .. $n); }

# a long string that compresses badly (stored out of line): a chain of md5
# digests (hex)
sub md5chain
{
	my ($len) = @_;
	my $s = '';
	my $h = sprintf('%x', rng_next());
	while (length($s) < $len) { $h = md5_hex($h); $s .= $h; }
	return substr($s, 0, $len);
}

######################################################################
# Database access

our $dbh;			# the session statements go to (a script may local() it)
our $in_txn = 0;	# the session is in a transaction: statements that may fail get a savepoint
our $last_expected;	# the message of the last expected error sql_do met
our $LOG;			# the --log script, if any
our $phase = 'setup';	# what the run is doing, for messages; in 'check' errors do not end it
our ($n_mismatch, $n_errors) = (0, 0);
# the line the --log script gets for a statement (values inlined already),
# without its newline; a script may set its own
our $log_line = sub { my ($sql) = @_; return "$sql;"; };

# open the --log script, if any: $header (a comment naming the run), then
# the setting that stops a replay at the first error
sub open_log
{
	my ($header) = @_;
	return unless $LOGFILE;
	open($LOG, '>:encoding(UTF-8)', $LOGFILE) or die "cannot write $LOGFILE: $!";
	print $LOG "$header\n\\set ON_ERROR_STOP 1\n";
}

# write a statement to the --log script, with its parameters inlined, so
# that psql can replay it
sub logsql
{
	my ($sql, $binds) = @_;
	print STDERR "SQL: ", (length($sql) > 300 ? substr($sql, 0, 300) . '...' : $sql), "\n" if $VERBOSE > 1;
	return unless $LOG;
	if ($binds && @$binds)
	{
		my @b = @$binds;
		$sql =~ s/\$(\d+)/$dbh->quote($b[$1 - 1])/ge;
	}
	print $LOG $log_line->($sql), "\n";
}

# a value for a message, cut to n characters
sub short { my ($s, $n) = @_; $n //= 300; $s //= 'NULL'; return length($s) > $n ? substr($s, 0, $n) . "...(" . length($s) . " chars)" : $s; }

# report an unexpected SQL error (counted: the seed fails)
sub sql_error
{
	my ($sql, $binds) = @_;
	$n_errors++;
	my $state = $dbh->state // '';
	my $msg = $dbh->errstr // 'unknown error';
	chomp $msg;
	print "ERROR $SEEDNAME ($phase): SQLSTATE $state: $msg\n";
	print "  statement: ", short($sql, 500), "\n";
	print "  replay: $REPLAY\n";
}

# A statement failed unexpectedly: reported; the seed ends (die "fatal"),
# except in the phase 'check', where undef is returned and the checks go on.
sub failed
{
	my ($sql, $binds) = @_;
	sql_error($sql, $binds);
	die "fatal\n" if $phase ne 'check';
	return undef;
}

# Run a statement.  Errors whose SQLSTATE is in $allow are expected: the
# statement is undone (through a savepoint inside a transaction) and 0 is
# returned.  Other errors are reported; they end the seed (die "fatal"),
# except outside a transaction in the phase 'check', where undef is
# returned and the checks go on.
sub sql_do
{
	my ($sql, $binds, $allow) = @_;
	$binds //= [];
	if ($allow && $in_txn)
	{
		sql_do('SAVEPOINT risky');
		print $LOG "\\set ON_ERROR_STOP 0\n" if $LOG;
		logsql($sql, $binds);
		print $LOG "\\set ON_ERROR_STOP 1\n" if $LOG;
		my $rv = $dbh->do($sql, undef, @$binds);
		if (!defined $rv)
		{
			my $st = $dbh->state // '';
			if (grep { $_ eq $st } @$allow)
			{
				$last_expected = $dbh->errstr;
				print STDERR "  (expected error $st: ", short($dbh->errstr, 200), ")\n" if $VERBOSE;
				sql_do('ROLLBACK TO SAVEPOINT risky');
				sql_do('RELEASE SAVEPOINT risky');
				return 0;
			}
			sql_error($sql, $binds);
			die "fatal\n";
		}
		sql_do('RELEASE SAVEPOINT risky');
		return $rv;
	}
	print $LOG "\\set ON_ERROR_STOP 0\n" if $LOG && $allow;
	logsql($sql, $binds);
	print $LOG "\\set ON_ERROR_STOP 1\n" if $LOG && $allow;
	my $rv = $dbh->do($sql, undef, @$binds);
	if (!defined $rv)
	{
		my $st = $dbh->state // '';
		if ($allow && grep { $_ eq $st } @$allow)
		{
			$last_expected = $dbh->errstr;
			print STDERR "  (expected error $st: ", short($dbh->errstr, 200), ")\n" if $VERBOSE;
			return 0;
		}
		return failed($sql, $binds);
	}
	return $rv;
}

# Rows of a query, as an array of array refs; an error ends the seed, or
# in the phase 'check' returns undef
sub sql_rows
{
	my ($sql, $binds) = @_;
	$binds //= [];
	logsql($sql, $binds);
	my $r = $dbh->selectall_arrayref($sql, undef, @$binds);
	return failed($sql, $binds) if !defined $r || $dbh->err;
	return $r;
}

# the first column of the first row of a query (undef if none)
sub sql_one
{
	my ($sql, $binds) = @_;
	my $r = sql_rows($sql, $binds);
	return undef unless $r && @$r;
	return $r->[0][0];
}

# transactions of the session (in_txn: statements that may fail get a savepoint)
sub txn_begin { sql_do('BEGIN'); $in_txn = 1; }
sub txn_commit { sql_do('COMMIT'); $in_txn = 0; }
sub txn_rollback { sql_do('ROLLBACK'); $in_txn = 0; }

my %DBI_ATTR = (AutoCommit => 1, RaiseError => 0, PrintError => 0, PrintWarn => 0,
				pg_placeholder_dollaronly => 1, pg_placeholder_nocolons => 1, pg_server_prepare => 0);

# a DBI handle on database $db (undef if the connection fails): errors are
# ours to report, placeholders are $1 only (values may hold '?' and ':')
sub dbi_connect { my ($db) = @_; return DBI->connect("dbi:Pg:dbname=$db", undef, undef, \%DBI_ATTR); }

# A session on database $db, with fixed settings (so that values print the
# same everywhere).  $create: a database that does not exist is created
# first, so that a replay works on its own.  No connection ends the run.
sub connect_session
{
	my ($db, $create) = @_;
	my $h = dbi_connect($db);
	if (!$h && $create && ($DBI::errstr // '') =~ /database \S+ does not exist/)
	{
		my $p = dbi_connect('postgres');
		$p->do('CREATE DATABASE ' . $p->quote_identifier($db)) if $p;
		$p->disconnect if $p;
		$h = dbi_connect($db);
	}
	$h or do { print "ERROR $SEEDNAME: cannot connect to database $db: $DBI::errstr\n"; exit 1; };
	local $dbh = $h;
	# lock_timeout: a lock wait between two sessions is a bug, not a hang
	for my $s ("SET search_path = pg_catalog", "SET client_min_messages = warning", "SET TimeZone = 'UTC'",
			   "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'", "SET bytea_output = 'hex'",
			   "SET extra_float_digits = 3", "SET lock_timeout = '30s'")
	{
		sql_do($s);
	}
	return $h;
}

######################################################################
# Reports

# report a mismatch (counted: the seed fails)
sub mismatch
{
	my ($what, @detail) = @_;
	$n_mismatch++;
	print "MISMATCH $SEEDNAME: $what\n";
	print "  $_\n" for @detail;
	print "  replay: $REPLAY\n";
}

# After the run died with $e: an error other than "fatal" (which sql_error
# reported already) and the ones in @quiet is reported and counted; an open
# transaction is rolled back.
sub seed_died
{
	my ($e, @quiet) = @_;
	if ($e ne "fatal\n" && !grep { $e eq $_ } @quiet)
	{
		$n_errors++;
		print "ERROR $SEEDNAME ($phase): $e";
		print "  replay: $REPLAY\n";
	}
	if ($in_txn) { $dbh->do('ROLLBACK'); $in_txn = 0; }
}

1;
