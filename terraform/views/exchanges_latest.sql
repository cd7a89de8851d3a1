-- The exchanges_latest view; generated from shared/warehouse/views.py by `make schemas`.
SELECT * FROM `${project}.${dataset}.exchanges`
QUALIFY ROW_NUMBER() OVER (
    PARTITION BY exchange_id ORDER BY source_timestamp DESC) = 1
