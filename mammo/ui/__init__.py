"""The Gradio page's parts that need no service, tested without a server: refusals in words
(``refusals``), widgets that check an API caller's values (``widgets``), plot colours and axes
(``charts``), texts, layouts and styling (``look``), steps run in the browser (``browser_steps``), how
events chain (``events``) and the example films (``gallery``); ``app.py`` wires them to
``mammo.service``."""
