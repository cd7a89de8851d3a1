"""The dashboard's routes: ``status``, and ``entities`` (one router per entity description);
``parameters`` holds the query parameters they share."""
