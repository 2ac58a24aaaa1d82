"""The page's fixed texts, table and plot layouts, and styling (CSS and theme: contrast, focus rings,
phones)."""

import gradio as gr

__all__ = ["COMPARISON_LAYOUT", "CONFUSION_COUNTS", "FEW_FILMS_A_BIN", "FILE_IN_HINT",
           "HEATMAP_FILE_EXPLAINED", "NO_FILE_HINT", "OFFER_EXPLAINED", "PAGE_CSS", "PAGE_THEME",
           "PLOT_MIN_WIDTH"]


OFFER_EXPLAINED = ("Offering is up to you: the image is then kept (re-encoded, without file name or DICOM "
                   "tags) until a clinician labels it or removes it; nothing trains on it before.")
# where the results come, before there are any: what to do, with no file and with one not yet predicted
# (a walk read nothing there once a file was in)
NO_FILE_HINT = ("Upload a mammogram, or click one of the real films under the upload box: its probabilities, "
                "malignancy score and heat map appear here.")
FILE_IN_HINT = ("Press **Predict** to read this file: its probabilities, malignancy score and heat map "
                "appear here.")
# what the full-size heat map's file holds, beside its button (a walk found a bare grey PNG unreadable)
HEATMAP_FILE_EXPLAINED = (
    "A 16-bit greyscale PNG at the uploaded file's own size, lined up pixel for pixel with it: the "
    "overlay's map without the film or colours, value / 65535 = the map's 0-1. *Lesion map*: each "
    "position's patch P(lesion) (1 - P(normal tissue), uncalibrated: not the film's malignancy score); "
    "Grad-CAM and the other methods: relative, 1 = the strongest evidence in this film. In Python: "
    "`numpy.asarray(PIL.Image.open(path)) / 65535`.")


# the served-vs-candidate tables and the confusion matrices wrap in columns of a set share: unwrapped,
# on a phone the metric's name filled the screen and the figures lay off its edge, and a matrix's
# "true" column scrolled away from its counts (walks). They hold a dozen rows at most, all shown: at
# Gradio's 500 px a phone's wrapped rows hid sensitivity, specificity and ECE in an inner scroll (a walk)
COMPARISON_LAYOUT = {"wrap": True, "column_widths": ["25%", "25%", "25%", "25%"],
                     "elem_classes": "comparison", "max_height": 2000}


# a plot in a row is at least this wide: two side by side on a screen, one under the other on a phone
# (Gradio's 160 px default put two 170 px plots side by side there, their legends cut)
PLOT_MIN_WIDTH = 320


# beside each confusion matrix: it counts the most likely class, which the review flag is not
CONFUSION_COUNTS = ("rows: the confirmed label; columns: the most likely class, not the review flag, which "
                    "compares the malignancy score with its cut-off")


# under each reliability plot: a point's bin may hold one or two films
FEW_FILMS_A_BIN = "Hover a point for its films: a bin of one or two jumps between 0 and 1."


# Gradio 6.31 gives a gallery a fixed 450 px grid even with height="auto" (blank space under two rows)
# and cuts its captions to one line ("Malignant ca..."), puts a × on each file of a box that is only
# for downloading (it takes the file off the page), lets a long JSON string (a pixel hash) run past
# its box's edge, and breaks a wrapped header mid-word
PAGE_CSS = ("#real-films .grid-wrap { min-height: 0; height: auto; }\n"
            # a keyboard's place is seen on the sliders and the gallery's films (Gradio shows none on a
            # slider and a 1 px dark ring round a dark film: an accessibility walk)
            "input[type=range]:focus-visible, #real-films button:focus-visible,\n"
            "#review-flag:focus-visible {\n"
            "  outline: 3px solid #1d4ed8 !important; outline-offset: 2px; }\n"
            # (a lighter blue on the dark theme's near-black: 3:1 or more)
            ".dark input[type=range]:focus-visible, .dark #real-films button:focus-visible,\n"
            ".dark #review-flag:focus-visible { outline-color: #60a5fa !important; }\n"
            ".dark { --color-accent: #f97316; }\n"
            "#real-films .caption-label { white-space: normal; max-width: 90%; }\n"
            ".download-only button[aria-label='Remove this file'] { display: none; }\n"
            ".json-node .value { overflow-wrap: anywhere; }\n"
            # (and the session's history: beside a case's long file name "model" read "mode / l")
            "#versions th, #versions th *, #history th, #history th * { word-break: normal;\n"
            "  overflow-wrap: normal; }\n"
            # (Gradio sets a Markdown's min width to 0, whatever min_width says): on a phone the retrain's
            # status line goes under the button, which it had squeezed to a sliver beside a narrow column
            f"#retrain-status {{ min-width: min({PLOT_MIN_WIDTH}px, 100%) !important; }}\n"
            # on a phone a wide table is squeezed to letters per line ("pul", "1 D e c"): it scrolls instead
            "@media (max-width: 640px) { .wide-table .table-container { overflow-x: auto !important; }\n"
            # every tab's name in one row at 390 px (and 360): at Gradio's 16 px padding three of the five
            # hid behind an unlabelled "•••" (a walk); the hidden row Gradio measures them in included
            "  .tab-wrapper .tab-container > button { padding-left: 5px !important;\n"
            "    padding-right: 5px !important; font-size: 13px !important; }\n"
            # and says so: a walk found columns off the screen's edge with nothing to tell they were there
            "  .wide-table .header-row .label p::after { content: ' (scroll sideways for more columns)';\n"
            "    font-style: italic; }\n"
            "  .wide-table .table-container > .table-wrap { min-width: 960px; }\n"
            # the versions' twelve columns need more: at 960 px "version" read "versio" (a walk)
            "  #versions .table-container > .table-wrap { min-width: 1400px; }\n"
            # the served-vs-candidate tables fit the screen in smaller type, words broken only where one
            # is longer than its column ("curren t" was)
            "  .comparison .table-wrap * { font-size: 12px !important; word-break: normal !important;\n"
            "    overflow-wrap: anywhere; }\n"
            "  .comparison .cell-wrap { padding-left: 4px !important; padding-right: 4px !important; }\n"
            # and the gallery's four columns of at least 100 px ran past the screen's edge, hiding two films:
            # two columns (four, with 9 px captions over quarter-width thumbnails, were hard to read: a walk)
            "  #real-films .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important;\n"
            "    grid-template-rows: none !important; grid-auto-rows: auto !important; }\n"
            # (their four rows whole: Gradio's grid keeps its desktop height, and scrolled the last row away)
            "  #real-films .grid-wrap { max-height: none !important; overflow-y: visible !important; }\n"
            # and each film's caption, over a half-width thumbnail, on one or two lines
            "  #real-films .caption-label { font-size: 12px; line-height: 1.2; padding: 2px 4px;\n"
            "    bottom: 2px; left: 2px; max-width: calc(100% - 4px); } }")


# small text at 4.5:1 or more against white (WCAG AA; an accessibility walk measured Gradio's defaults):
# its subdued grey (a field's info line, a slider's ends, "- or -": 1.9:1) as its labels' grey (4.8:1),
# its orange (white on the primary buttons, 2.8:1; the selected tab) one shade darker (5.2:1), and its
# red (white on the buttons that withdraw or serve an older version, 3.8:1) likewise (6.5:1)
# (in dark mode its buttons take the darker shades too, white on its orange being 3.6:1; its accent
# keeps Gradio's orange, 6.8:1 on the near-black, in PAGE_CSS: the theme has one accent for both)
PAGE_THEME = gr.themes.Default().set(body_text_color_subdued="#71717a", color_accent="#c2410c",
                                     button_primary_background_fill="#c2410c",
                                     button_primary_background_fill_dark="#c2410c",
                                     button_primary_background_fill_hover="#9a3412",
                                     button_primary_background_fill_hover_dark="#9a3412",
                                     button_cancel_background_fill="#b91c1c",
                                     button_cancel_background_fill_dark="#b91c1c",
                                     button_cancel_background_fill_hover="#991b1b",
                                     button_cancel_background_fill_hover_dark="#991b1b")
