"""The reports' pictures (``charts``) and templates (``templates/``); the reports themselves
are gathered in ``server.services.reports``."""
