"""``perfkit top``: a live view of a Python process — py-spy windows rolled back to back
(:mod:`perfkit.tools.pyspy_stream`), a sliding window of shares (:mod:`.window`), /proc
readings (:mod:`.procwatch`), the frame on screen (:mod:`.view`), keys (:mod:`.keys`)
and the loop that ties them (:mod:`.session`)."""
