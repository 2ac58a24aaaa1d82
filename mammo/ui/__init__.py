"""The Gradio page's parts that need no service: error handling, form widgets, plots, styling,
browser-side steps and the example films; ``app.py`` wires them to ``mammo.service``."""
