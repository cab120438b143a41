# Hot standby: a streaming replica preloads chainstore too, but its worker stays
# idle (no worker process) while the primary's delivers; rows, versions, batches
# and deliveries replicate, and the table fingerprint is the same on both. With
# the IPFS node down the primary is left with undelivered batches and unsealed
# outbox rows; it crashes, the standby is promoted, the IPFS node returns, and
# the promoted node's worker seals the outbox and delivers everything: all
# verified, no version lost.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ChainstoreTest;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $worker_sql = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'chainstore worker'};

my $ipfs = start_ipfs();
my $primary = new_preloaded_node('primary', init => { allows_streaming => 1 },
	conf => [ 'chainstore.batch_size = 13', 'chainstore.max_attempts = 1000',
		'chainstore.breaker_min_requests = 3', 'chainstore.breaker_open_time = 2' ]);
$primary->start;

# the test's own count of committed changes (each is one version)
my $changes = 0;

# one application transaction; one aborted by a deadlock with the worker's
# write-back (which updates the same rows) is recorded and, as an application
# would, retried
my @deadlocks;
sub write_tx
{
	my ($node, $sql) = @_;
	for my $try (1 .. 5)
	{
		my ($ret, $out, $err) = $node->psql('postgres', "BEGIN;\n$sql\nCOMMIT;", on_error_stop => 1);
		return if $ret == 0;
		die "transaction failed: $err" unless $err =~ /deadlock detected/;
		push @deadlocks, $err;
	}
	die 'transaction aborted by a deadlock 5 times';
}

$primary->safe_psql('postgres', qq{
	CREATE EXTENSION chainstore;
	SELECT chainstore.add_sink('ipfs', 'ipfs', ARRAY['$ipfs->{url}']);
	CREATE TABLE items (id bigint PRIMARY KEY, val text, n integer NOT NULL, cid text);
	SELECT chainstore.track('items', writeback => '{"ipfs_cid": "cid"}');
	INSERT INTO items (id, val, n) SELECT g, 'first ' || g, 0 FROM generate_series(1, 100) g;
});
$changes += 100;
ok(wait_for_sql($primary, q{SELECT count(*) > 0 AND bool_and(state = 'verified') FROM chainstore.deliveries}, 't'),
	'primary: worker delivers and verifies the first rows');

# --- a streaming standby from a base backup; it preloads chainstore as well ---
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');
is($standby->safe_psql('postgres', q{SHOW shared_preload_libraries}), 'chainstore', 'standby preloads chainstore');
is($standby->safe_psql('postgres', q{SHOW chainstore.databases}), 'postgres', 'standby has chainstore.databases set');
is($primary->safe_psql('postgres', $worker_sql), '1', 'primary runs a chainstore worker');

write_tx($primary, q{
	INSERT INTO items (id, val, n) SELECT g, 'second ' || g, 0 FROM generate_series(101, 160) g;
	UPDATE items SET n = n + 1, val = 'updated' WHERE id % 10 = 0;
	DELETE FROM items WHERE id % 25 = 0;
});
$changes += 60 + 16 + 6;
ok(wait_for_sql($primary, q{SELECT count(*) FROM chainstore.outbox}, '0'), 'primary seals the second rows');
ok(wait_for_sql($primary, q{SELECT count(*) FROM chainstore.deliveries WHERE state <> 'verified'}, '0'),
	'primary delivers and verifies them');
$primary->wait_for_catchup($standby);

my $state_sql = q{
	SELECT (SELECT count(*) FROM items) || ' rows, ' ||
	       (SELECT count(*) FROM chainstore.versions) || ' versions, ' ||
	       (SELECT count(*) FROM chainstore.outbox) || ' outbox, ' ||
	       (SELECT count(*) FROM chainstore.batches) || ' batches, ' ||
	       (SELECT count(*) FROM chainstore.proofs) || ' proofs, ' ||
	       (SELECT count(*) FROM chainstore.deliveries) || ' deliveries, ' ||
	       (SELECT count(*) FROM items WHERE cid IS NOT NULL) || ' written back'};
is($standby->safe_psql('postgres', $state_sql), $primary->safe_psql('postgres', $state_sql),
	'rows, versions, batches, proofs, deliveries and write-backs replicate to the standby');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM chainstore.versions}), $changes,
	"one version per committed change ($changes)");
my $fp_sql = q{SELECT encode(chainstore.table_fingerprint('items'), 'hex')};
my $fp = $primary->safe_psql('postgres', $fp_sql);
like($fp, qr/^[0-9a-f]{64}$/, 'primary has a table fingerprint');
is($standby->safe_psql('postgres', $fp_sql), $fp, 'table_fingerprint on the standby equals the primary\'s');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM chainstore.verify_table('items')}), '0',
	'verify_table runs on the standby and finds nothing');

# the standby's worker stays idle however long we look
usleep(1_500_000);
is($standby->safe_psql('postgres', $worker_sql), '0', 'no chainstore worker process on the hot standby');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE '%chainstore%' OR application_name LIKE '%chainstore%'}),
	'0', 'nothing of chainstore runs on the standby');
is($primary->safe_psql('postgres', $worker_sql), '1', 'while the primary\'s worker runs');
unlike(slurp_file($standby->logfile), qr/chainstore worker started/, 'the standby never started a worker');

# --- the IPFS node goes down: the primary keeps sealing, nothing is delivered ---
stop_ipfs($ipfs, 'KILL');
write_tx($primary, q{
	INSERT INTO items (id, val, n) SELECT g, 'third ' || g, 0 FROM generate_series(161, 230) g;
	UPDATE items SET n = n + 1 WHERE id BETWEEN 1 AND 20;
});
$changes += 70 + 20;
ok(wait_for_sql($primary, q{SELECT count(*) FROM chainstore.outbox}, '0'), 'primary seals while the IPFS node is down');
ok(wait_for_sql($primary, q{SELECT count(*) > 0 FROM chainstore.attempts WHERE NOT ok}, 't'),
	'primary tries to deliver and fails');
my $undelivered_sql = q{SELECT count(*) FROM chainstore.deliveries WHERE state IN ('pending', 'in_flight')};
my $undelivered = $primary->safe_psql('postgres', $undelivered_sql);
cmp_ok($undelivered, '>=', 7, "primary holds undelivered batches ($undelivered)");

# stop sealing on the primary (postgresql.auto.conf is not replicated: the
# standby keeps its own settings), so that committed versions stay in the outbox
$primary->safe_psql('postgres', q{
	ALTER SYSTEM SET chainstore.max_batch_delay = '1h';
	ALTER SYSTEM SET chainstore.batch_size = 100000;
	SELECT pg_reload_conf();
});
usleep(1_000_000);
my $batches_before = $primary->safe_psql('postgres', q{SELECT count(*) FROM chainstore.batches});
write_tx($primary, q{
	INSERT INTO items (id, val, n) SELECT g, 'fourth ' || g, 0 FROM generate_series(231, 270) g;
	UPDATE items SET n = n + 1 WHERE id BETWEEN 21 AND 24;
	DELETE FROM items WHERE id BETWEEN 26 AND 27;
});
$changes += 40 + 4 + 2;
usleep(1_000_000);
is($primary->safe_psql('postgres', q{SELECT count(*) FROM chainstore.outbox}), '46',
	'primary has 46 committed versions waiting in the outbox');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM chainstore.batches}), $batches_before,
	'and seals no more batches');

# everything that matters has replicated before the primary goes away
$primary->wait_for_catchup($standby);
my $stable_sql = q{
	SELECT (SELECT count(*) FROM items) || ' rows, ' ||
	       (SELECT count(*) FROM chainstore.versions) || ' versions, ' ||
	       (SELECT count(*) FROM chainstore.outbox) || ' outbox, ' ||
	       (SELECT count(*) FROM chainstore.batches) || ' batches, ' ||
	       (SELECT max(batch_id) FROM chainstore.batches) || ' last batch, ' ||
	       (SELECT count(*) FROM chainstore.proofs) || ' proofs, ' ||
	       (SELECT count(*) FROM chainstore.deliveries WHERE state IN ('delivered', 'verified')) || ' delivered'};
my $primary_state = $primary->safe_psql('postgres', $stable_sql);
is($standby->safe_psql('postgres', $stable_sql), $primary_state,
	"the standby has the pending outbox rows and undelivered batches ($primary_state)");
is($standby->safe_psql('postgres', $undelivered_sql), $undelivered, 'the undelivered batches are undelivered on the standby too');
is($standby->safe_psql('postgres', $fp_sql), $primary->safe_psql('postgres', $fp_sql),
	'table_fingerprint still equal');
is($standby->safe_psql('postgres', $worker_sql), '0', 'still no worker on the standby');

# --- the primary crashes, the standby is promoted, the IPFS node returns ---
$primary->stop('immediate');
my $log_offset = -s $standby->logfile;
$standby->promote;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'standby promoted');
ok($standby->poll_query_until('postgres', $worker_sql, '1'), 'the promoted node starts a chainstore worker');
like(substr(slurp_file($standby->logfile), $log_offset), qr/chainstore worker started for database "postgres"/,
	'the worker started after the promotion');

$ipfs = start_ipfs(port => $ipfs->{port}, repo => $ipfs->{repo});
$standby->safe_psql('postgres', q{
	INSERT INTO items (id, val, n) SELECT g, 'after promotion ' || g, 0 FROM generate_series(271, 290) g;
});
$changes += 20;

ok(wait_for_sql($standby, q{SELECT count(*) FROM chainstore.outbox}, '0', $timeout),
	'the promoted node seals the pending outbox rows');
ok(wait_for_sql($standby, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0', $timeout),
	'the promoted node delivers and verifies every batch')
  or diag($standby->safe_psql('postgres',
	  q{SELECT state, count(*), min(batch_id), max(batch_id), max(attempts), max(last_error)
	      FROM chainstore.deliveries GROUP BY state}));

# no version lost, every one anchored once
is($standby->safe_psql('postgres', q{SELECT count(*) FROM chainstore.versions}), $changes,
	"one version per committed change ($changes)");
is($standby->safe_psql('postgres', q{SELECT count(*) FROM chainstore.proofs}), $changes,
	'count(proofs) = count(versions): no version lost');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.versions v
	 WHERE NOT EXISTS (SELECT 1 FROM chainstore.proofs p JOIN chainstore.deliveries d USING (batch_id)
	                    WHERE p.version_id = v.version_id AND d.state = 'verified')}), '0',
	'every version is in a verified batch');
my ($nbatches, $min, $max) = split /\|/, $standby->safe_psql('postgres',
	q{SELECT count(*), min(batch_id), max(batch_id) FROM chainstore.batches});
is("$min..$max", "1..$nbatches", 'batch ids are consecutive across the promotion');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.batches b WHERE NOT (chainstore.verify_batch(b.batch_id)).ok}), '0',
	'verify_batch is ok for every batch: the batch chain continues unbroken');
is($standby->safe_psql('postgres', q{SELECT string_agg(DISTINCT timeline::text, ',' ORDER BY timeline::text) FROM chainstore.batches}),
	'1,2', 'batches sealed before the promotion are on timeline 1, after it on timeline 2');
is($standby->safe_psql('postgres', q{SELECT count(DISTINCT system_identifier) FROM chainstore.batches}), '1',
	'one system identifier throughout');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.batches b
	 WHERE (SELECT count(*) FROM chainstore.deliveries d WHERE d.batch_id = b.batch_id) <> 1}), '0',
	'exactly one delivery per batch');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.deliveries
	 WHERE attestation->>'ipfs_cid' IS DISTINCT FROM payload_id
	    OR payload_id <> chainstore.ipfs_cid(convert_to(chainstore.batch_manifest(batch_id)::text, 'UTF8'))}), '0',
	'every attestation is the CID of its batch manifest');

my @bad;
for my $row (split /\n/, $standby->safe_psql('postgres',
	q{SELECT batch_id, payload_id, encode(payload, 'hex') FROM chainstore.deliveries ORDER BY batch_id}))
{
	my ($batch, $cid, $hex) = split /\|/, $row;
	my $res = ipfs_rpc($ipfs, 'cat', [ arg => $cid ], [ timeout => '5s' ]);
	push @bad, "batch $batch ($cid): HTTP $res->{status}" unless $res->{success} && $res->{content} eq pack('H*', $hex);
}
is(join('; ', @bad), '', 'the IPFS node holds every manifest, byte for byte');

is($standby->safe_psql('postgres', q{SELECT count(*) FROM chainstore.verify_table('items')}), '0',
	'verify_table is empty on the promoted node');
ok(wait_for_sql($standby, q{SELECT count(*) FROM items WHERE cid IS NULL}, '0'),
	'every row has its CID written back, including those sealed after the promotion');

is(scalar(@deadlocks), 0, "no application transaction was aborted by a deadlock with the worker's write-back")
  or diag("BUG: the worker's write-back deadlocks with application transactions:\n" . join("\n", @deadlocks));

$standby->stop;
my $log = slurp_file($standby->logfile);
unlike($log, qr/PANIC|terminated by signal|dead-lettered/, 'no crash or dead letter on the promoted node');
stop_ipfs($ipfs);
done_testing();
