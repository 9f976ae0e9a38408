"""The worker process: the loop that leases and runs jobs (``worker``), one attempt
(``attempt``), the periodic scheduler, the ``--processes`` supervisor, the event loop
choice and Django's task signals. Runtime reaches Redis only through worker/protocol."""
