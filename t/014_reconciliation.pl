# Reconciliation: the database must notice when it no longer matches the
# ledgers. A base backup is taken after some batches were anchored on IPFS;
# more batches are anchored; then the cluster is restored from that backup.
# The restored worker finds the sink's head ahead of its own chain, raises a
# fork (view and log), anchors nothing more there until an administrator
# acknowledges it, and then anchors its own chain.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ChainstoreTest;

my $ipfs = start_ipfs();
my $node = new_preloaded_node('origin', init => { allows_streaming => 1 },
	conf => [ 'chainstore.reconcile_interval = 1' ]);
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION chainstore;
	SELECT chainstore.add_sink('ipfs', 'ipfs', ARRAY['$ipfs->{url}']);
	CREATE TABLE ledger (id int PRIMARY KEY, v text);
	SELECT chainstore.track('ledger');
	INSERT INTO ledger SELECT g, 'a' FROM generate_series(1, 30) g;
});
ok(wait_for_sql($node, q{SELECT count(*) > 0 AND bool_and(state = 'verified') FROM chainstore.deliveries}, 't')
	&& wait_for_sql($node, q{SELECT count(*) FROM chainstore.outbox}, '0'),
	'first batches anchored');
ok(wait_for_sql($node, q{SELECT status FROM chainstore.reconciliation}, 'ok'),
	'the sink head matches the local chain');
my $batches_at_backup = $node->safe_psql('postgres', 'SELECT max(batch_id) FROM chainstore.batches');

$node->backup('before_more');

$node->safe_psql('postgres', q{INSERT INTO ledger SELECT g, 'b' FROM generate_series(31, 60) g});
ok(wait_for_sql($node, qq{SELECT count(*) > 0 FROM chainstore.deliveries WHERE batch_id > $batches_at_backup AND state = 'verified'}, 't'),
	'more batches anchored after the backup');
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0'),
	'all anchored');
my $sink_head = $node->safe_psql('postgres', 'SELECT max(batch_id) FROM chainstore.batches');
cmp_ok($sink_head, '>', $batches_at_backup, "the sink now holds batches up to $sink_head");
# a reconcile after the last delivery sees the sink head equal to the local one
ok(wait_for_sql($node, q{SELECT status || ':' || sink_batch_id FROM chainstore.reconciliation}, "ok:$sink_head"),
	'the head on the sink follows the deliveries');
$node->stop('immediate');

# restore the old backup as if the newer data were lost
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'before_more');
$restored->start;
is($restored->safe_psql('postgres', 'SELECT max(batch_id) FROM chainstore.batches'), $batches_at_backup,
	'the restored database has only the old batches');
ok(wait_for_sql($restored, q{SELECT status || ':' || blocking FROM chainstore.reconciliation_report}, 'fork:true'),
	'the restored worker raises a fork');
like($restored->safe_psql('postgres', q{SELECT detail FROM chainstore.reconciliation_report}),
	qr/newest batch is $sink_head but this database's is $batches_at_backup/, 'the report says what diverged');
ok($restored->wait_for_log(qr/sink ipfs holds a different batch chain/), 'the fork is in the server log');

# new writes are sealed but nothing is anchored on that sink
$restored->safe_psql('postgres', q{INSERT INTO ledger SELECT g, 'c' FROM generate_series(100, 110) g});
ok(wait_for_sql($restored, q{SELECT count(*) FROM chainstore.outbox}, '0'), 'new versions are still sealed');
sleep 2;
is($restored->safe_psql('postgres', qq{SELECT count(*) FROM chainstore.deliveries WHERE batch_id > $batches_at_backup AND state <> 'pending'}),
	'0', 'nothing is delivered to the forked sink');
is($restored->safe_psql('postgres', qq{SELECT count(*) FROM chainstore.attempts WHERE batch_id > $batches_at_backup}),
	'0', 'not even attempted');
# blocked work must not make the worker spin: it sleeps (naptime) between rounds
{
	my $wpid = $restored->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'chainstore worker'});
	my $ticks = sub { open(my $fh, '<', "/proc/$wpid/stat") or return 0; my @f = split ' ', (split /\)/, <$fh>)[1]; return $f[11] + $f[12]; };
	my $t0 = $ticks->();
	sleep 3;
	my $used = $ticks->() - $t0;
	cmp_ok($used, '<', 60, "the worker stays idle while the sink is blocked ($used ticks of CPU in 3 s)");
}

# an administrator acknowledges the fork; the local chain is anchored from then on
$restored->safe_psql('postgres', q{SELECT chainstore.acknowledge_fork('ipfs')});
ok(wait_for_sql($restored, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0'),
	'after the acknowledgment the new batches are anchored');
ok(wait_for_sql($restored, q{SELECT status FROM chainstore.reconciliation}, 'ok'),
	'the sink head now follows the restored chain');
my $err = '';
$restored->psql('postgres', q{SELECT chainstore.acknowledge_fork('ipfs')}, stderr => \$err);
like($err, qr/has no fork to acknowledge/, 'acknowledging when there is no fork is an error');

$restored->stop;
unlike(slurp_file($restored->logfile), qr/terminated by signal|PANIC/, 'no crash');
stop_ipfs($ipfs);
done_testing();
