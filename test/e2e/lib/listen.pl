#!/usr/bin/perl
# A client that LISTENs on a channel and writes every notification's payload,
# one per line, to a file, until a notification whose JSON payload has the
# member "event" equal to STOP_EVENT arrives (exit 0) or SECONDS pass (exit 2).
# Used by test/e2e/lib/common.sh (listen_start / listen_wait).
#
#   perl listen.pl DBNAME CHANNEL OUTFILE READYFILE STOP_EVENT SECONDS
#
# The server and user come from libpq's environment (PGHOST, PGPORT, PGUSER).
# READYFILE is created once the LISTEN is in effect (committed), so that the
# caller knows that a NOTIFY from then on reaches us.
use strict;
use warnings;
use DBI;
use IO::Handle;
use JSON::PP;

my ($dbname, $channel, $outfile, $readyfile, $stop_event, $seconds) = @ARGV;
die "usage: listen.pl DBNAME CHANNEL OUTFILE READYFILE STOP_EVENT SECONDS\n" unless defined $seconds;

my $dbh = DBI->connect("dbi:Pg:dbname=$dbname", undef, undef,
	{ AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1 });
$dbh->do('LISTEN ' . $dbh->quote_identifier($channel));

open(my $out, '>>', $outfile) or die "listen.pl: cannot open $outfile: $!\n";
$out->autoflush(1);
binmode($out, ':encoding(UTF-8)');
open(my $ready, '>', $readyfile) or die "listen.pl: cannot create $readyfile: $!\n";
print $ready "$$\n";
close($ready);

my $json = JSON::PP->new;
my $deadline = time + $seconds;
my $fd = $dbh->{pg_socket};
while (time < $deadline) {
	while (my $n = $dbh->pg_notifies) {
		my ($name, $pid, $payload) = @$n;
		print $out "$payload\n";
		my $event = eval { $json->decode($payload)->{event} };
		if (defined $event && $event eq $stop_event) {
			$dbh->disconnect;
			exit 0;
		}
	}
	# Wait for the socket to become readable (or half a second).
	my $rin = '';
	vec($rin, $fd, 1) = 1;
	select($rin, undef, undef, 0.5);
}
print STDERR "listen.pl: no '$stop_event' event on channel $channel within ${seconds}s\n";
$dbh->disconnect;
exit 2;
