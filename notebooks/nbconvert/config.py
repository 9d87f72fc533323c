# nbconvert's configuration for the project's renders (the Makefile's NBCONVERT passes --config this file):
# one parameters cell (papermill's injected values merged into the defaults, hebb_utils/report/render.py), and
# the "What this shows" cells (tagged hide-input) shown as their text, without their code.
c = get_config()  # noqa: F821 (traitlets' config loader defines it)
c.HTMLExporter.preprocessors = ["hebb_utils.report.render.MergeParameters"]
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_input_tags = {"hide-input"}
