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

# ---- helpers of the crash and standby tests (t/011, t/013) ----

push @EXPORT, qw(ipfs_rpc worker_pid pid_alive wait_until_dead postmaster_children);

# POST a Kubo RPC call (/api/v0/<call>) to the IPFS node; query given as a list
# of [name, value] pairs; returns HTTP::Tiny's response hash
sub ipfs_rpc
{
	my ($ipfs, $call, @query) = @_;
	require HTTP::Tiny;
	my $http = HTTP::Tiny->new(timeout => 30);
	my $url = "$ipfs->{url}/api/v0/$call";
	my $qs = join('&', map { "$_->[0]=" . $_->[1] } @query);
	$url .= "?$qs" if $qs ne '';
	return $http->request('POST', $url);
}

# pid of the chainstore worker of a node ('' if none is running)
sub worker_pid
{
	my ($node) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'chainstore worker'});
	return $ret == 0 ? $out : '';
}

# is a process alive? (a zombie is not)
sub pid_alive
{
	my ($pid) = @_;
	return 0 unless $pid && kill(0, $pid);
	open(my $fh, '<', "/proc/$pid/stat") or return 0;
	my $stat = <$fh>;
	close $fh;
	return 0 if defined $stat && $stat =~ /^\d+ \(.*\) Z/;
	return 1;
}

# wait (bounded) until none of the pids is alive; returns the ones still alive
sub wait_until_dead
{
	my ($timeout, @pids) = @_;
	my $deadline = time() + $timeout;
	my @alive = grep { pid_alive($_) } @pids;
	while (@alive && time() < $deadline)
	{
		usleep(50_000);
		@alive = grep { pid_alive($_) } @alive;
	}
	return @alive;
}

# pids of the postmaster's child processes
sub postmaster_children
{
	my ($pmpid) = @_;
	my @children;
	opendir(my $dh, '/proc') or return ();
	for my $pid (grep { /^\d+$/ } readdir $dh)
	{
		open(my $fh, '<', "/proc/$pid/stat") or next;
		my $stat = <$fh>;
		close $fh;
		push @children, $pid if defined $stat && $stat =~ /^\d+ \(.*\) \S (\d+) / && $1 == $pmpid;
	}
	closedir $dh;
	return @children;
}

# ---- helpers of the hostile sink test (t/012) ----

push @EXPORT, qw(start_hostile stop_hostile hostile_stats hostile_mode hostile_reset);

# start test/hostile-sink/server.mjs in one mode on a free port; returns a handle
sub start_hostile
{
	my ($mode, @extra) = @_;
	my $script = repo_root() . '/test/hostile-sink/server.mjs';
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'node', $script, '--port', 0, '--mode', $mode, @extra ],
		'>', \$out, '2>', \$err);
	my $deadline = time() + 30;
	while ($out !~ /ready (\d+)/ && time() < $deadline)
	{
		usleep(100_000);
		$h->pump_nb;
		die "hostile sink exited: $err" unless $h->pumpable;
	}
	my ($port) = $out =~ /ready (\d+)/;
	die "hostile sink did not start: $out $err" unless $port;
	return { handle => $h, port => $port, mode => $mode, url => "http://127.0.0.1:$port" };
}

sub stop_hostile
{
	my ($hs) = @_;
	return unless $hs && $hs->{handle};
	$hs->{handle}->signal('TERM');
	eval { $hs->{handle}->finish; };
	$hs->{handle} = undef;
}

sub _hostile_call
{
	my ($hs, $method, $path) = @_;
	require HTTP::Tiny;
	require JSON::PP;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method, "$hs->{url}$path");
	die "hostile sink $method $path: $r->{status} $r->{content}" unless $r->{success};
	return JSON::PP::decode_json($r->{content});
}

# {mode, total, paths => {path => count}, hung, hungDropped, cut}
sub hostile_stats { return _hostile_call($_[0], 'GET', '/__stats'); }
sub hostile_mode { return _hostile_call($_[0], 'POST', "/__mode?m=$_[1]"); }
sub hostile_reset { return _hostile_call($_[0], 'POST', '/__reset'); }

1;
