# Test helpers for chainstore's TAP tests: a preloaded cluster and the local
# peers (a real IPFS node speaking the Kubo RPC API, test/ipfs-node/).
package ChainstoreTest;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(repo_root start_ipfs stop_ipfs new_preloaded_node wait_for wait_for_sql);

# where package.json and test/ live (scripts/test.sh exports it)
sub repo_root
{
	return $ENV{CHAINSTORE_ROOT} || die "CHAINSTORE_ROOT is not set";
}

# start test/ipfs-node/server.mjs on a free port; returns a handle
sub start_ipfs
{
	my (%args) = @_;
	my $port = $args{port} || PostgreSQL::Test::Cluster::get_free_port();
	my $repo = $args{repo} || "$PostgreSQL::Test::Utils::tmp_check/ipfs-$port";
	my $script = repo_root() . '/test/ipfs-node/server.mjs';
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'node', $script, '--port', $port, '--repo', $repo, '--host', '127.0.0.1' ],
		'>', \$out, '2>', \$err);
	my $deadline = time() + 30;
	while ($out !~ /ready/ && time() < $deadline)
	{
		usleep(100_000);
		$h->pump_nb;
		die "IPFS node exited: $err" unless $h->pumpable;
	}
	die "IPFS node did not start: $out $err" unless $out =~ /ready/;
	return { handle => $h, port => $port, repo => $repo, url => "http://127.0.0.1:$port" };
}

sub stop_ipfs
{
	my ($ipfs, $signal) = @_;
	return unless $ipfs && $ipfs->{handle};
	$ipfs->{handle}->signal($signal || 'TERM');
	eval { $ipfs->{handle}->finish; };
	$ipfs->{handle} = undef;
}

# a cluster with chainstore preloaded and quick worker settings
sub new_preloaded_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} || {} });
	$node->append_conf('postgresql.conf', join("\n",
		"shared_preload_libraries = 'chainstore'",
		"chainstore.databases = 'postgres'",
		"chainstore.naptime = 200",
		"chainstore.max_batch_delay = 200",
		"chainstore.retry_base_storage = 200",
		"chainstore.retry_max_delay = 2000",
		"chainstore.connect_timeout = 1000",
		"chainstore.request_timeout = 5000",
		"chainstore.verify_delay = 2",
		@{ $opts{conf} || [] }) . "\n");
	return $node;
}

# poll a query until it returns the expected value (bounded)
sub wait_for_sql
{
	my ($node, $sql, $expected, $timeout) = @_;
	$timeout ||= 60;
	my $deadline = time() + $timeout;
	my $got = '';
	while (time() < $deadline)
	{
		$got = $node->safe_psql('postgres', $sql);
		return 1 if $got eq $expected;
		usleep(200_000);
	}
	diag("waited ${timeout}s for [$sql] = [$expected], last got [$got]");
	return 0;
}

1;
