#!/usr/bin/env perl
# Check a history recorded by test/t/301_no_stale_reads.pl (or any run of
# HcReliability::Workload with the HcReliability::Listings workers) and print
# the per-phase counts and the first violations.
#
#   test/reliability/check_history.pl DIR
#
# DIR holds phases.tsv, one NAME.tsv per worker, and listings.tsv (one line
# per tracked listing: id, city, initial version).  Exit status: 0 when the
# history has no stale, phantom, regressed or incomplete read and no
# unexpected error; 1 otherwise; 2 on bad usage.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use HcReliability::History;

my $dir = shift @ARGV;
if (!defined $dir || @ARGV || !-d $dir)
{
	print STDERR "usage: $0 HISTORY_DIR\n";
	exit 2;
}

my (%city_of, %initial);
open my $fh, '<', "$dir/listings.tsv" or die "$dir/listings.tsv: $!\n";
while (<$fh>)
{
	chomp;
	my ($id, $city, $v) = split /\t/;
	$city_of{$id} = $city;
	$initial{$id} = $v // 0;
}
close $fh;

my $r = HcReliability::History->load($dir)->check(city_of => \%city_of, initial => \%initial);
print "$_\n" for $r->summary_lines;
my @f = $r->failures;
print "first violations:\n", map { "  $_\n" } @f if @f;
my $t = $r->totals;
exit(($t->{stale} || $t->{phantom} || $t->{regression} || $t->{incomplete} || $t->{missing} || $t->{error}) ? 1 : 0);
