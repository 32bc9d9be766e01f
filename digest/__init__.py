"""Stage 4b, report: the daily opinion digest (舆情日报).

- :mod:`digest.build`: the day's figures from the shared tables, and the headline paragraph.
- :mod:`digest.charts`: posts per hour (rumors highlighted) and per category, as PNG.
- :mod:`digest.render`: Jinja2 templates to a subject, phone-friendly HTML and a text part.
- :mod:`digest.config`: recipients and their sections (YAML).
- :mod:`digest.send`: the MIME message with inline CID images, and SMTP delivery.
- :mod:`digest.service`: build, store, send once per day per recipient list, retry.
"""
