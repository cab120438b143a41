# Crash: 24 cycles of kill -9 of the worker, an immediate shutdown of the
# postmaster, or kill -9 of the postmaster, each landing at a random point
# while the worker seals and delivers to a real IPFS node (small batches, so a
# random point often falls mid-upload or mid-recording). The test keeps its
# own count of every committed change. Afterwards every change has exactly one
# version, every version is in exactly one batch, every batch was delivered to
# IPFS exactly once under the one CID its manifest hashes to, and everything
# verifies.
#
# CHAINSTORE_CRASH_SEED=<n> replays a run's random choices (the seed is printed);
# where the kills land also depends on timing.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use JSON::PP;
use List::Util qw(shuffle);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use ChainstoreTest;

my $seed = $ENV{CHAINSTORE_CRASH_SEED} // int(rand(1 << 30));
srand($seed);
note "random seed $seed (CHAINSTORE_CRASH_SEED=$seed replays this run)";

my $cycles_per_kind = 8;
my @kinds = shuffle((('worker-kill9') x $cycles_per_kind), (('postmaster-immediate') x $cycles_per_kind),
	(('postmaster-kill9') x $cycles_per_kind));
my $cycles = @kinds;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $ipfs = start_ipfs();
# small batches and few deliveries per round: many rounds, so that a random
# point often falls mid-upload or mid-recording
my $node = new_preloaded_node('crash', conf => [ 'restart_after_crash = on', 'chainstore.concurrency = 4' ]);
$node->start;

$node->safe_psql('postgres', qq{
	CREATE EXTENSION chainstore;
	SELECT chainstore.add_sink('ipfs', 'ipfs', ARRAY['$ipfs->{url}']);
	CREATE TABLE items (id bigint PRIMARY KEY, val text, n integer NOT NULL, cid text);
	SELECT chainstore.track('items', writeback => '{"ipfs_cid": "cid"}');
	ALTER SYSTEM SET chainstore.batch_size = 13;
	SELECT pg_reload_conf();
});

# the test's own account of what committed
my %live;                  # id => 1 for every row that exists
my $next_id = 1;
my %expected = (I => 0, U => 0, D => 0);
my %kill_points;           # what the worker was doing when it was hit

sub pick
{
	my ($n, $exclude) = @_;
	my @ids = shuffle(sort { $a <=> $b } grep { !$exclude->{$_} } keys %live);
	return @ids[ 0 .. ($n < @ids ? $n : scalar(@ids)) - 1 ];
}

# application transactions aborted by a deadlock with the worker (its write-back
# updates the same rows); they rolled back, so they are not counted
my @deadlocks;

# one transaction of inserts, updates and deletes (and sometimes a key change);
# counted only once psql has returned success, i.e. COMMIT succeeded
sub write_transaction
{
	my ($cycle, $tx) = @_;
	my @sql;
	my %count = (I => 0, U => 0, D => 0);
	my %touched;

	my $ins = 10 + int(rand(50));
	my @new = ($next_id .. $next_id + $ins - 1);
	push @sql, 'INSERT INTO items (id, val, n) VALUES '
	  . join(', ', map { "($_, 'c$cycle t$tx', 0)" } @new) . ';';
	$count{I} += $ins;

	my @upd = pick(int(rand(20)), \%touched);
	$touched{$_} = 1 for @upd;
	if (@upd)
	{
		push @sql, "UPDATE items SET n = n + 1, val = 'u c$cycle t$tx' WHERE id IN (" . join(', ', @upd) . ');';
		$count{U} += @upd;
	}

	my @del = pick(int(rand(8)), \%touched);
	$touched{$_} = 1 for @del;
	if (@del)
	{
		push @sql, 'DELETE FROM items WHERE id IN (' . join(', ', @del) . ');';
		$count{D} += @del;
	}

	# a primary key change records a deletion of the old key and an insertion of the new
	my @rekey = rand() < 0.3 ? pick(1, \%touched) : ();
	my $rekey_to = $next_id + $ins;
	if (@rekey)
	{
		push @sql, "UPDATE items SET id = $rekey_to WHERE id = $rekey[0];";
		$count{D}++;
		$count{I}++;
	}

	my ($ret, $out, $err) = $node->psql('postgres', join("\n", 'BEGIN;', @sql, 'COMMIT;'), on_error_stop => 1);
	if ($ret != 0)
	{
		# psql stopped at the failing statement: no COMMIT ran, nothing committed
		die "cycle $cycle transaction $tx failed: $err" unless $err =~ /deadlock detected/;
		push @deadlocks, "cycle $cycle transaction $tx: $err";
		$next_id += $ins + 1;
		return;
	}

	# committed: account for it
	$live{$_} = 1 for @new;
	delete $live{$_} for @del;
	if (@rekey)
	{
		delete $live{ $rekey[0] };
		$live{$rekey_to} = 1;
	}
	$next_id += $ins + 1;
	$expected{$_} += $count{$_} for keys %count;
}

# wait until the server accepts queries and a new worker runs (not the one
# just killed, whose entry may linger until the postmaster notices); returns its pid
sub wait_for_worker
{
	my ($what, $old_pid) = @_;
	$old_pid ||= 0;
	my $ok = $node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'chainstore worker' AND pid <> $old_pid});
	BAIL_OUT("no chainstore worker after $what") unless $ok;
	return worker_pid($node);
}

my $worker_pid = wait_for_worker('start');
ok($worker_pid, "worker running before the first crash (pid $worker_pid)");

my $started = time();
for my $cycle (1 .. $cycles)
{
	my $kind = $kinds[ $cycle - 1 ];

	# a burst: several committed transactions, and one that rolls back
	my $txs = 3 + int(rand(4));
	write_transaction($cycle, $_) for 1 .. $txs;
	$node->safe_psql('postgres', "BEGIN; INSERT INTO items (id, val, n) VALUES (-$cycle, 'rolled back', 0); ROLLBACK;");

	usleep(int(rand(400_000)));

	my $activity = $node->safe_psql('postgres',
		q{SELECT state || ': ' || coalesce(query, '') FROM pg_stat_activity WHERE backend_type = 'chainstore worker'});
	$kill_points{$activity}++;

	if ($kind eq 'worker-kill9')
	{
		# (a worker that failed with an ERROR is restarted 5 s later: wait for it)
		my $pid = worker_pid($node) || wait_for_worker("cycle $cycle, before the kill");
		kill('KILL', $pid) or BAIL_OUT("cycle $cycle: kill -9 $pid failed: $!");
		note "cycle $cycle: kill -9 of worker $pid ($activity)";
		# the postmaster notices, kills every backend, recovers and restarts
		my @alive = wait_until_dead(30, $pid);
		BAIL_OUT("cycle $cycle: worker $pid survived kill -9") if @alive;
		$worker_pid = $pid;
	}
	elsif ($kind eq 'postmaster-immediate')
	{
		note "cycle $cycle: immediate shutdown ($activity)";
		$node->stop('immediate');
		$node->start;
	}
	else
	{
		my $pmpid = $node->{_pid};
		my @children = postmaster_children($pmpid);
		note "cycle $cycle: kill -9 of postmaster $pmpid with children @children ($activity)";
		$node->kill9;
		# the children notice the postmaster's death; a new postmaster may only
		# start once they are gone (shared memory interlock)
		my @alive = wait_until_dead(60, $pmpid, @children);
		if (@alive)
		{
			diag("cycle $cycle: processes still alive 60 s after kill -9 of the postmaster: @alive: "
				  . join('; ', map { my $c = eval { slurp_file("/proc/$_/cmdline") } // ''; $c =~ s/\0/ /g; "$_ $c" } @alive));
			BAIL_OUT('children of a killed postmaster did not exit');
		}
		# pg_ctl checks the old pid with kill(pid, 0): wait until it is reaped too
		my $deadline = time() + 30;
		usleep(20_000) while kill(0, $pmpid) && time() < $deadline;
		BAIL_OUT("cycle $cycle: killed postmaster $pmpid was not reaped within 30 s") if kill(0, $pmpid);
		$node->start;
	}
	$worker_pid = wait_for_worker("cycle $cycle ($kind)", $worker_pid);
}
my $elapsed = time() - $started;
note sprintf('%d crash cycles in %.1f s', $cycles, $elapsed);
note "worker activity when hit: $_ x $kill_points{$_}" for sort keys %kill_points;
cmp_ok($cycles, '>=', 20, "$cycles crash cycles run");
my $mid_round = grep { /^active: chainstore: (sealing|claiming|delivering|recording)/ } map { ($_) x $kill_points{$_} } keys %kill_points;
cmp_ok($mid_round, '>', 0, "kills landed mid-round: sealing, claiming, delivering or recording ($mid_round of $cycles)")
  or diag('every kill found the worker idle: the bursts are too small for the worker to be busy when the kill lands');

my $total = $expected{I} + $expected{U} + $expected{D};
note "committed changes: $expected{I} inserts, $expected{U} updates, $expected{D} deletes";

# --- the worker drains everything after the last crash ---
ok(wait_for_sql($node, q{SELECT count(*) FROM chainstore.outbox}, '0', $timeout),
	'outbox drained after the last crash');
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0', $timeout),
	'every delivery verified after the last crash')
  or diag($node->safe_psql('postgres',
	  q{SELECT state, count(*), min(batch_id), max(batch_id), max(attempts), max(last_error)
	      FROM chainstore.deliveries GROUP BY state}));
ok(wait_for_sql($node, q{SELECT count(*) FROM chainstore.deliveries WHERE delayed_verified_at IS NULL}, '0', $timeout),
	'every delivery verified again after verify_delay');

# the model of the test is the table's content
is($node->safe_psql('postgres', q{SELECT count(*) FROM items WHERE id < 0}), '0', 'rolled back rows are absent');
is($node->safe_psql('postgres', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM items}),
	join(',', sort { $a <=> $b } keys %live), 'the table holds exactly the rows the test committed');

# (a) every committed change: one version, in exactly one batch
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.versions}), $total,
	"one version per committed change ($total)");
is($node->safe_psql('postgres', q{SELECT string_agg(op || '=' || n, ' ' ORDER BY op) FROM (SELECT op::text, count(*) AS n FROM chainstore.versions GROUP BY op) s}),
	"D=$expected{D} I=$expected{I} U=$expected{U}", 'versions per operation equal the committed inserts, updates and deletes');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.proofs}), $total,
	'count(proofs) = count(versions) = committed changes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.versions v
	 WHERE NOT EXISTS (SELECT 1 FROM chainstore.proofs p WHERE p.version_id = v.version_id)}), '0',
	'no version missing from the batches');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.proofs p
	 WHERE NOT EXISTS (SELECT 1 FROM chainstore.versions v WHERE v.version_id = p.version_id)}), '0',
	'no proof without its version');
is($node->safe_psql('postgres', q{SELECT sum(record_count) FROM chainstore.batches}), $total,
	'record counts of the batches add up to the committed changes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.batches b
	 WHERE b.record_count <> (SELECT count(*) FROM chainstore.proofs p WHERE p.batch_id = b.batch_id)
	    OR b.record_count > 13}), '0',
	'every batch holds record_count versions, at most batch_size');

# (b) the batch chain
my ($nbatches, $min, $max) = split /\|/, $node->safe_psql('postgres',
	q{SELECT count(*), min(batch_id), max(batch_id) FROM chainstore.batches});
cmp_ok($nbatches, '>', $cycles, "many batches ($nbatches)");
is("$min..$max", "1..$nbatches", 'batch ids are consecutive from 1');
is($node->safe_psql('postgres', q{SELECT last_batch_id FROM chainstore.batch_head}), $max,
	'the batch head points at the last batch');
is($node->safe_psql('postgres', q{
	SELECT string_agg(b.batch_id || ': ' || r.detail, '; ' ORDER BY b.batch_id)
	  FROM chainstore.batches b, LATERAL chainstore.verify_batch(b.batch_id) r WHERE NOT r.ok}), '',
	'verify_batch is ok for every batch');

# (c) exactly one delivery per batch, its CID held by the IPFS node
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.batches b
	 WHERE (SELECT count(*) FROM chainstore.deliveries d WHERE d.batch_id = b.batch_id) <> 1}), '0',
	'exactly one delivery per batch for the sink');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.deliveries
	 WHERE attestation->>'ipfs_cid' IS DISTINCT FROM payload_id OR payload_id IS NULL}), '0',
	"every delivery's attestation CID equals its payload_id");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT batch_id FROM chainstore.attempts
	                       WHERE step = 'submit' AND ok GROUP BY batch_id HAVING count(*) <> 1) s}), '0',
	'one recorded successful submit per batch');

my @deliveries = map { [ split /\|/ ] } split /\n/, $node->safe_psql('postgres',
	q{SELECT batch_id, payload_id, encode(payload, 'hex') FROM chainstore.deliveries ORDER BY batch_id});
my @cat_bad;
for my $d (@deliveries)
{
	my ($batch, $cid, $hex) = @$d;
	my $res = ipfs_rpc($ipfs, 'cat', [ arg => $cid ], [ timeout => '5s' ]);
	push @cat_bad, "batch $batch ($cid): HTTP $res->{status}" . ($res->{success} ? ', content differs' : " $res->{content}")
	  unless $res->{success} && $res->{content} eq pack('H*', $hex);
}
is(scalar(@deliveries), $nbatches, 'one stored payload per batch');
is(join('; ', @cat_bad), '', 'the IPFS node returns every CID with exactly the stored payload bytes');

my $pins = ipfs_rpc($ipfs, 'pin/ls', [ type => 'recursive' ]);
ok($pins->{success}, 'pin/ls answers');
my %pinned = map { $_ => 1 } keys %{ decode_json($pins->{content})->{Keys} || {} };
my %delivered = map { $_->[1] => $_->[0] } @deliveries;
is(join(' ', grep { !$pinned{$_} } sort keys %delivered), '', 'the node pins every delivered CID');
# anything else pinned (say, a head file) must not be a manifest: a manifest
# pinned under a CID no delivery records would be a second CID for a batch
my @other_manifests;
for my $cid (sort grep { !exists $delivered{$_} } keys %pinned)
{
	my $res = ipfs_rpc($ipfs, 'cat', [ arg => $cid ], [ timeout => '5s' ]);
	push @other_manifests, "$cid: $res->{content}" if $res->{content} =~ /chainstore-manifest-v1/;
}
is(join("\n", @other_manifests), '', 'no other manifest was ever added to the node');

# (d) no two different CIDs for one batch: the payload is the manifest, and its CID
is($node->safe_psql('postgres', q{
	SELECT string_agg(batch_id::text, ',' ORDER BY batch_id) FROM chainstore.deliveries
	 WHERE payload_id <> chainstore.ipfs_cid(convert_to(chainstore.batch_manifest(batch_id)::text, 'UTF8'))
	    OR payload <> convert_to(chainstore.batch_manifest(batch_id)::text, 'UTF8')}), '',
	'each payload_id is the CID of the batch manifest as it is now, and the payload its bytes');
is($node->safe_psql('postgres', q{SELECT count(DISTINCT payload_id) FROM chainstore.deliveries}), $nbatches,
	'a different CID for every batch');

# (e) the table verifies
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.verify_table('items')}), '0',
	'verify_table(items) is empty');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.verification_status WHERE status <> 'verified'}), '0',
	'every record (live or deleted) is verified');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM items i
	  JOIN chainstore.verification_status s ON s.pk = jsonb_build_object('id', i.id)
	  JOIN chainstore.deliveries d ON d.batch_id = s.batch_id
	 WHERE i.cid IS DISTINCT FROM d.attestation->>'ipfs_cid'}), '0',
	'every row carries the CID of the batch holding its latest version');

# (f) the server log
$node->stop;
my $log = slurp_file($node->logfile);
my $starts = () = $log =~ /chainstore worker started for database/g;
cmp_ok($starts, '>=', $cycles + 1, "the worker started again after every crash ($starts starts)");
my $crash_restarts = () = $log =~ /terminated by signal 9: Killed/g;
is($crash_restarts, $cycles_per_kind, 'the postmaster saw each killed worker');
unlike($log, qr/PANIC/, 'no PANIC in the server log');
my %worker_pids = map { $_ => 1 } $log =~ /\[(\d+)\] LOG:  chainstore worker started/g;
my @log_lines = split /\n/, $log;
my @worker_errors;    # each: the ERROR line and what follows it
for my $i (0 .. $#log_lines)
{
	next unless $log_lines[$i] =~ /^\S+ \S+ \S+ \[(\d+)\] (ERROR|FATAL):/ && $worker_pids{$1}
	  && $log_lines[$i] !~ /due to administrator command/;
	my $end = $i + 8 < $#log_lines ? $i + 8 : $#log_lines;
	push @worker_errors, join("\n", @log_lines[ $i .. $end ]);
}
is(scalar(@worker_errors), 0, 'the worker never failed with an ERROR')
  or diag(join("\n--\n", @worker_errors[ 0 .. ($#worker_errors < 2 ? $#worker_errors : 2) ]));
is(scalar(@deadlocks), 0, "no application transaction was aborted by a deadlock with the worker's write-back")
  or diag("BUG: the worker's write-back (chainstore._writeback, run in the worker's 'recording deliveries'"
	  . " transaction) updates rows of the tracked table in arbitrary order while holding the locks of the"
	  . ' whole recording transaction; an application transaction updating several of those rows deadlocks'
	  . ' with it and is aborted with SQLSTATE 40P01 (' . scalar(@deadlocks) . " times here):\n"
	  . join("\n", @deadlocks[ 0 .. ($#deadlocks < 2 ? $#deadlocks : 2) ])
	  . "\nserver log:\n" . join("\n", grep { defined } ($log =~ /(ERROR:  deadlock detected\n(?:.*\n){4})/g)[0 .. 1]));
unlike($log, qr/dead-lettered|does not verify on sink/, 'nothing dead-lettered or mismatched');

stop_ipfs($ipfs);
done_testing();
