-- The exchanges_hourly view; generated from shared/warehouse/views.py by `make schemas`.
SELECT TIMESTAMP_TRUNC(source_timestamp, HOUR) AS hour,
       DATE(source_timestamp) AS day, exchange_id, name, rank,
       percent_total_volume, volume_usd, trading_pairs,
       source_timestamp AS snapshot_ts
FROM `${project}.${dataset}.exchanges`
WHERE processing_timestamp >= TIMESTAMP_SUB(
    CURRENT_TIMESTAMP(), INTERVAL 90 DAY)
QUALIFY ROW_NUMBER() OVER (
    PARTITION BY exchange_id, TIMESTAMP_TRUNC(source_timestamp, HOUR)
    ORDER BY source_timestamp DESC) = 1
