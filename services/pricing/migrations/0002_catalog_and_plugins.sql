-- Instance catalog: unit prices with effective dates (price history), refreshed through plugins.
CREATE TABLE catalog_prices (
    id             bigserial PRIMARY KEY,
    provider       text NOT NULL,
    service        text NOT NULL,
    sku            text NOT NULL,
    region         text NOT NULL DEFAULT '',
    unit           text NOT NULL,
    unit_price     numeric NOT NULL,
    currency       text NOT NULL,
    source         text NOT NULL,
    description    text,
    effective_from timestamptz NOT NULL,
    effective_to   timestamptz,
    fetched_at     timestamptz NOT NULL DEFAULT now()
);
-- at most one current price per key and source
CREATE UNIQUE INDEX catalog_prices_current_idx
    ON catalog_prices (source, provider, service, sku, region, currency) WHERE effective_to IS NULL;
CREATE INDEX catalog_prices_key_idx ON catalog_prices (provider, service, sku, region);

CREATE VIEW v_catalog_prices AS
SELECT provider, service, sku, region, unit, unit_price, currency, source, description,
       effective_from, effective_to, fetched_at, effective_to IS NULL AS current
FROM catalog_prices;

-- Health of the pricing plugins as the service last saw it.
CREATE TABLE plugin_health (
    plugin      text PRIMARY KEY,
    state       text NOT NULL,
    calls       bigint NOT NULL DEFAULT 0,
    failures    bigint NOT NULL DEFAULT 0,
    cache_hits  bigint NOT NULL DEFAULT 0,
    restarts    bigint NOT NULL DEFAULT 0,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW v_plugin_health AS
SELECT plugin, state, calls, failures, cache_hits, restarts, last_error, updated_at FROM plugin_health;
