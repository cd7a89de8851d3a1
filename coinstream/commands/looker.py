"""``coinstream looker-url``: a Looker Studio link that opens a report on the coinstream views.

The link itself is built by ``services.dashboard.looker``; this is its place on the command line.
"""

from __future__ import annotations

from typing import Annotated

import typer

from coinstream.output import JsonOption, fail, print_json
from services.dashboard.looker import LookerUnavailable, url_for_settings
from shared.settings import load_settings_or_exit


def looker_url(
    project: Annotated[
        str | None, typer.Option(help="BigQuery project (default: COINSTREAM_GCP_PROJECT).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset (default: COINSTREAM_BIGQUERY_DATASET).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Print a Looker Studio link that opens a report on the coinstream views."""
    settings = load_settings_or_exit()
    if dataset:
        settings = settings.model_copy(update={"bigquery_dataset": dataset})
    try:
        url = url_for_settings(settings, project)
    except LookerUnavailable as error:
        fail(str(error))
    if json:
        print_json({"url": url})
    else:
        print(url)
