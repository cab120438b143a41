-- A small credential marketplace: listings of verifiable credentials and their purchases.
CREATE TABLE credential_listings (
    id          bigint PRIMARY KEY,
    issuer      text NOT NULL,
    credential  text NOT NULL,
    price_usd   numeric(12,2) NOT NULL,
    listed_at   timestamptz NOT NULL DEFAULT now(),
    attributes  jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE purchases (
    id          bigint PRIMARY KEY,
    listing_id  bigint NOT NULL REFERENCES credential_listings,
    buyer       text NOT NULL,
    amount_usd  numeric(12,2) NOT NULL,
    ip_address  inet,
    bought_at   timestamptz NOT NULL DEFAULT now(),
    ipfs_cid    text                      -- filled in by chainstore's write-back
);
SELECT chainstore.track('credential_listings');
SELECT chainstore.track('purchases', exclude_columns => '{ip_address}',
                        writeback => '{"ipfs_cid": "ipfs_cid"}');
