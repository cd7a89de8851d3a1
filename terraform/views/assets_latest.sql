-- The assets_latest view; generated from shared/warehouse/views.py by `make schemas`.
SELECT * FROM `${project}.${dataset}.assets`
QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY source_timestamp DESC) = 1
