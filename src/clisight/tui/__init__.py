"""The terminal views: ``clisight top`` (a Textual app, ``pip install 'clisight[tui]'``) and the
seed's ``MonitoringDashboard`` (plain text, no Textual needed).

Nothing is imported here: ``clisight.tui.app`` loads Textual, ``clisight.tui.dashboard`` does not.
Every value shown comes from the query service (``clisight.query.live`` and friends) and passes
through ``clisight._terminal.clean`` inside a Rich ``Text``, so neither control characters nor Rich
markup in stored data ever reach the terminal as anything but visible text.
"""
