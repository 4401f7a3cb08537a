-- Exchange rates for `cost projected --currency` (finfocus fx import): units of `currency`
-- per 1 `base` on `rate_date` (ECB reference rates are per 1 EUR). A re-import of a day
-- replaces that day's rate; the table keeps every day imported.
CREATE TABLE fx_rates (
    rate_date   date NOT NULL,
    base        char(3) NOT NULL,
    currency    char(3) NOT NULL,
    rate        numeric NOT NULL CHECK (rate > 0),
    source      text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rate_date, base, currency)
);

CREATE VIEW v_fx_rates AS
SELECT rate_date, base, currency, rate, source, imported_at FROM fx_rates;
