"""The README's results, one module per notebook: a new notebook is a new module here and one line of
SECTIONS, with no edit to report/tables.py.

SECTIONS maps each notebook's name (its results/<name>.json) to the module that writes its part of the
README, in notebook order; a module may write several notebooks (softhebb.py: 04 and 05). tables.py
calls, for the notebooks whose JSON is present (`loaded`: notebook name -> its JSON):

    results(res, number) -> (lines, number)   required: the notebook's tables and text (Markdown lines)
                                              from its JSON `res`; `number` is the next table's number,
                                              returned advanced by the tables it wrote
    figures(loaded) -> lines                  optional: figures shown above all the tables
    findings(loaded) -> lines                 optional: sentences shown below all the tables
    headline(loaded) -> [(rank, text)]        optional: findings for the README's first screen, in the
                                              order of their rank (lower first) among every section's
    headline_note(loaded) -> str              optional: a remark added to the headline figure's caption
    MACHINE = True                            optional: its JSON's machine is the one the README names
                                              (the first such notebook present; a deterministic one)
    FIXED_TABLES = n                          optional: its n tables keep their numbers when the notebook
                                              has not run (the numbering after them does not shift)
    LONG_RUN = "folder"                       optional: results/<folder>/<name>.json, a longer run of the
                                              notebook outside `make reproduce`, given to results() as
                                              res["long_run"] when it is there

Module-level hooks (all but `results`) are called once per module, whatever the number of notebooks
it writes.
"""
from . import activations, dictionaries, foundations, pca, softhebb, topography

__all__ = ["SECTIONS"]

SECTIONS = {
    "01_extract_activations": activations,
    "02_foundations": foundations,
    "03_pca_family": pca,
    "04_cifar_softhebb": softhebb,
    "05_lm_softhebb": softhebb,
    "06_topography": topography,
    "07_dictionaries": dictionaries,
}
