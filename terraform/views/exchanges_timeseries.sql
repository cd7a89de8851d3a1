-- The exchanges_timeseries view; generated from shared/warehouse/views.py by `make schemas`.
SELECT source_timestamp AS ts, exchange_id, name, rank, percent_total_volume,
       volume_usd, trading_pairs, processing_timestamp
FROM `${project}.${dataset}.exchanges`
