-- The assets_hourly view; generated from shared/warehouse/views.py by `make schemas`.
SELECT TIMESTAMP_TRUNC(source_timestamp, HOUR) AS hour,
       DATE(source_timestamp) AS day, id, symbol, name, rank, price_usd,
       market_cap_usd, supply, max_supply,
       supply_ratio * 100 AS supply_percent_of_max, volume_usd_24hr,
       change_percent_24hr, source_timestamp AS snapshot_ts
FROM `${project}.${dataset}.assets`
WHERE processing_timestamp >= TIMESTAMP_SUB(
    CURRENT_TIMESTAMP(), INTERVAL 90 DAY)
QUALIFY ROW_NUMBER() OVER (
    PARTITION BY id, TIMESTAMP_TRUNC(source_timestamp, HOUR)
    ORDER BY source_timestamp DESC) = 1
