-- The assets_timeseries view; generated from shared/warehouse/views.py by `make schemas`.
SELECT source_timestamp AS ts, id, symbol, name, rank, price_usd, market_cap_usd,
       supply, max_supply, supply_ratio, volume_usd_24hr, change_percent_24hr,
       processing_timestamp
FROM `${project}.${dataset}.assets`
