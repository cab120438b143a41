# The worker delivers batches to a real IPFS node: manifest added, CID equal to
# chainstore's own computation and to the node's, written back into the mapped
# column, verified immediately and again later. Then the node goes down under a
# stream of inserts: the circuit opens, retries stay bounded, nothing is lost,
# and after the node returns everything drains and verifies. SIGHUP reloads
# settings in the running worker.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ChainstoreTest;

my $ipfs = start_ipfs();
my $backup = start_ipfs();    # a second endpoint of the same sink, for failover
my $node = new_preloaded_node('ipfs', conf => [ 'chainstore.breaker_min_requests = 3',
	'chainstore.breaker_open_time = 2', 'chainstore.max_attempts = 1000' ]);
$node->start;

$node->safe_psql('postgres', qq{
	CREATE EXTENSION chainstore;
	SELECT chainstore.add_sink('ipfs', 'ipfs', ARRAY['$ipfs->{url}']);
	CREATE TABLE purchases (id bigint PRIMARY KEY, buyer text, amount numeric(12,2), cid text);
	SELECT chainstore.track('purchases', writeback => '{"ipfs_cid": "cid"}');
	INSERT INTO purchases SELECT g, 'buyer ' || g, g FROM generate_series(1, 300) g;
	UPDATE purchases SET amount = amount + 1 WHERE id <= 10;
});

ok(wait_for_sql($node, q{SELECT count(*) FROM chainstore.outbox}, '0'), 'worker sealed everything');
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0'),
	'every batch delivered and verified');

# the CID: chainstore's (payload_id), the node's (attestation), an independent
# computation (test/ipfs-node/reference-cid.mjs) and the content read back all agree
my @rows = split /\n/, $node->safe_psql('postgres',
	q{SELECT d.batch_id, d.payload_id, d.attestation->>'ipfs_cid', encode(d.payload, 'hex')
	    FROM chainstore.deliveries d ORDER BY 1});
ok(@rows >= 1, 'at least one delivery');
for my $row (@rows)
{
	my ($batch, $ours, $theirs, $hex) = split /\|/, $row;
	is($theirs, $ours, "batch $batch: node's CID equals chainstore's");
	my $file = "$PostgreSQL::Test::Utils::tmp_check/manifest-$batch.json";
	open(my $fh, '>:raw', $file) or die;
	print $fh pack('H*', $hex);
	close $fh;
	my $ref = repo_root() . '/test/ipfs-node/reference-cid.mjs';
	my ($out, $err) = run_command([ 'node', '--input-type=module', '-e',
		"import { kuboAddCid } from 'file://$ref'; import { readFileSync } from 'node:fs';"
		  . " console.log(kuboAddCid(readFileSync(process.argv[1]), { cidVersion: 1 }).cid)", $file ]);
	like($out, qr/\Q$ours\E/, "batch $batch: CID computed independently is the same");
	my $manifest = $node->safe_psql('postgres', "SELECT chainstore.batch_manifest($batch)::text");
	is(pack('H*', $hex), $manifest, "batch $batch: stored payload is the manifest");
}

is($node->safe_psql('postgres', q{SELECT count(*) FROM purchases WHERE cid IS NULL}), '0',
	'every row has its CID written back');
# the worker reports table statistics, so autovacuum and the planner see the outbox churn
ok(wait_for_sql($node, q{SELECT n_tup_del >= 310 FROM pg_stat_user_tables WHERE relid = 'chainstore.outbox'::regclass}, 't', 30),
	'the worker reports its table statistics');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM purchases p
	  JOIN chainstore.verification_status s ON s.pk = jsonb_build_object('id', p.id)
	  JOIN chainstore.deliveries d ON d.batch_id = s.batch_id
	 WHERE p.cid IS DISTINCT FROM d.attestation->>'ipfs_cid'}), '0',
	'each row carries the CID of the batch holding its latest version');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.verify_table('purchases')}), '0',
	'write-back created no versions and verify_table is clean');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.versions}), '310',
	'write-back did not capture new versions');
is($node->safe_psql('postgres', q{SELECT DISTINCT status FROM chainstore.verification_status}), 'verified',
	'analysts see every record verified');
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE delayed_verified_at IS NULL) FROM chainstore.deliveries}, '0'),
	'delayed verification done');
is($node->safe_psql('postgres', q{SELECT count(*), bool_and(ok) FROM chainstore.verifications GROUP BY phase ORDER BY phase}),
	$node->safe_psql('postgres', q{SELECT count(*) || '|t' FROM chainstore.deliveries}) . "\n" .
	$node->safe_psql('postgres', q{SELECT count(*) || '|t' FROM chainstore.deliveries}),
	'one immediate and one delayed verification per delivery, all ok');

# --- the node goes down under a stream of inserts ---
stop_ipfs($ipfs, 'KILL');
$node->safe_psql('postgres', q{ALTER SYSTEM SET chainstore.batch_size = 7; SELECT pg_reload_conf();});
for my $i (1 .. 20)
{
	$node->safe_psql('postgres', "INSERT INTO purchases VALUES (1000 + $i, 'stream', $i)");
	Time::HiRes::usleep(100_000);
}
ok(wait_for_sql($node, qq{SELECT state FROM chainstore.circuit_states() WHERE endpoint = '$ipfs->{url}'}, 'open'),
	'circuit opened while the node is down');
my $attempts = $node->safe_psql('postgres',
	qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$ipfs->{url}' AND NOT ok});
cmp_ok($attempts, '<=', 20, "failed attempts stay bounded while the circuit is open ($attempts)");
Time::HiRes::usleep(1_500_000);
my $attempts_later = $node->safe_psql('postgres',
	qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$ipfs->{url}' AND NOT ok});
cmp_ok($attempts_later - $attempts, '<=', 3, 'an open circuit lets only probes through');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.deliveries WHERE state = 'dead'}), '0',
	'nothing dead-lettered while the node is down');
is($node->safe_psql('postgres', q{SELECT max(record_count) <= 7 FROM chainstore.batches WHERE batch_id > (SELECT min(batch_id) FROM chainstore.batches b2 WHERE b2.sealed_at > now() - interval '10 seconds')}),
	't', 'SIGHUP: the worker picked up the new batch size');

# failover: a second endpoint takes over while the first is down
$node->safe_psql('postgres', qq{SELECT chainstore.alter_sink('ipfs', endpoints => ARRAY['$ipfs->{url}', '$backup->{url}'])});
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state NOT IN ('verified')) FROM chainstore.deliveries}, '0'),
	'failover endpoint drains the backlog');
ok($node->safe_psql('postgres', qq{SELECT count(*) > 0 FROM chainstore.deliveries WHERE endpoint = '$backup->{url}'}) eq 't',
	'deliveries went to the backup endpoint');

# the first node returns on the same repository and everything verifies there too
$ipfs = start_ipfs(port => $ipfs->{port}, repo => $ipfs->{repo});
$node->safe_psql('postgres', qq{SELECT chainstore.alter_sink('ipfs', endpoints => ARRAY['$ipfs->{url}'])});
$node->safe_psql('postgres', qq{SELECT chainstore.circuit('$ipfs->{url}', 'auto')});
$node->safe_psql('postgres', q{INSERT INTO purchases SELECT g, 'after', 1 FROM generate_series(2000, 2049) g});
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0'),
	'after the node returns everything drains and verifies');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.outbox}), '0', 'outbox empty');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM chainstore.versions v
	 WHERE NOT EXISTS (SELECT 1 FROM chainstore.proofs p JOIN chainstore.deliveries d USING (batch_id)
	                    WHERE p.version_id = v.version_id AND d.state = 'verified')}), '0',
	'no version lost: every one is in a verified batch');
is($node->safe_psql('postgres', q{SELECT count(*) FROM purchases WHERE cid IS NULL}), '0',
	'write-back reached the rows written while the node was down');

# views
my $health = $node->safe_psql('postgres', q{SELECT circuit, requests_1h > 0, latency_p50_ms IS NOT NULL FROM chainstore.sink_health});
like($health, qr/^closed\|t\|t$/, 'sink_health shows a closed circuit, requests and latency');

# --- secrets: an Authorization header from a file in chainstore.secrets_dir ---
my $secrets = "$PostgreSQL::Test::Utils::tmp_check/secrets";
mkdir $secrets;
my $token = 'Bearer s3cr3t-' . int(rand(1e9));
open(my $sf, '>', "$secrets/ipfs-token") or die;
print $sf "$token\n";
close $sf;
$node->safe_psql('postgres', qq{ALTER SYSTEM SET chainstore.secrets_dir = '$secrets'; SELECT pg_reload_conf();});
$node->safe_psql('postgres', q{SELECT chainstore.alter_sink('ipfs', options => '{"auth_secret": "ipfs-token"}')});
$node->safe_psql('postgres', q{INSERT INTO purchases SELECT g, 'secret', 1 FROM generate_series(3000, 3009) g});
ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state <> 'verified') FROM chainstore.deliveries}, '0'),
	'deliveries with a secret Authorization header succeed');
$node->safe_psql('postgres', q{SELECT chainstore.alter_sink('ipfs', options => '{"auth_secret": "no-such-secret"}')});
$node->safe_psql('postgres', q{INSERT INTO purchases VALUES (3100, 'secret', 1)});
ok(wait_for_sql($node, q{
	SELECT d.state || ':' || (d.last_error LIKE 'secret "no-such-secret" cannot be read%')
	  FROM chainstore.deliveries d JOIN chainstore.proofs p USING (batch_id) JOIN chainstore.versions v USING (version_id)
	 WHERE v.record_key = chainstore.record_key('purchases', '{"id": 3100}')}, 'dead:true'),
	'a missing secret dead-letters the new delivery with a clear error');
is($node->safe_psql('postgres', q{SELECT count(*) FROM chainstore.deliveries WHERE state = 'dead' AND delivered_at IS NOT NULL}),
	'0', 'verifications that cannot run do not take back what was delivered');
my $dump = $node->safe_psql('postgres', q{
	SELECT string_agg(t::text, E'\n') FROM (
	    SELECT s::text AS t FROM chainstore.sinks s UNION ALL SELECT d::text FROM chainstore.deliveries d
	    UNION ALL SELECT a::text FROM chainstore.attempts a UNION ALL SELECT c::text FROM chainstore.circuit_states() c
	    UNION ALL SELECT setting FROM pg_settings WHERE name LIKE 'chainstore.%') x});
unlike($dump, qr/s3cr3t/, 'the secret appears in no chainstore table or setting');
is($node->safe_psql('postgres', q{SET ROLE chainstore_admin; SELECT count(*) FROM pg_settings WHERE name = 'chainstore.secrets_dir'}), '0',
	'chainstore.secrets_dir is hidden from non-superusers');

$node->stop;
unlike(slurp_file($node->logfile), qr/s3cr3t/, 'the secret appears in no log line');
unlike(slurp_file($node->logfile), qr/terminated by signal|TRAP|PANIC/, 'no crash in the server log');
stop_ipfs($ipfs);
stop_ipfs($backup);
done_testing();
