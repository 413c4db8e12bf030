"""Simulated annotators: scripted people who take part in a study through its real pages.

They exist so that a Parity without people (a demo, a test, a benchmark) still gets
judgments that mean something: each simulated annotator opens the study link,
consents, practises, judges and finishes over HTTP exactly as a browser would, and
chooses by a measurable property of the images it downloads (how well each one shows
its caption, `demo.scene_check`), so better generators win more often. A few
are deliberately bad (fast random clickers, left-pressers), for the exclusion rules
to find.

- `population`: profiles, personal parameters, the choice model (pure Python).
- `browser`: a stdlib HTTP client that speaks the pages' forms and htmx.
- `session`: one annotator's visit, from the link to the completion code.
- `server`: the project served over real HTTP inside the current process.

The HTTP flow is the annotators' own, unchanged: the pages cannot tell a simulated
annotator from a person. `manage.py simulate_annotators` marks each one as
simulated in the database (`Annotator.Source.SIMULATED`) right after it enters, so
exports, the study page and reports can tell them apart.
"""
