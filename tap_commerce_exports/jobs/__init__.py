"""The provider-agnostic export-job engine: create -> wait -> locate files -> download.

Where things live (one job each; ``orchestrator.py`` only joins them):

* ``job.py``: one job, its states and the transition table.
* ``board.py``: all jobs, the lock, the one guarded move, how jobs fail.
* ``failures.py``: which errors end a whole account, which one window.
* ``capacity.py``: places in flight (per account, in all), export hours, per account.
* ``create_refusals.py``: the back-off clock of refused creates (HTTP 503), per account.
* ``scheduler.py``: the engine thread: saved exports, creates, status checks, splits.
* ``polling.py``: how long to wait before the next status check.
* ``fetcher.py``: downloading a finished export's files.
* ``handoff.py``: finished jobs to the Singer layer, in window order.
"""
