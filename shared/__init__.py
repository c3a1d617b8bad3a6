"""Code shared by the Tickwork API and daemon: models, settings, database access,
schedule maths and the HTTP client."""

import zoneinfo

# Time zones come from the tzdata package that ships with Tickwork, never from
# the host's /usr/share/zoneinfo, so every machine computes the same fire times.
# zoneinfo reads the host's files first unless its search path is empty.
zoneinfo.reset_tzpath(to=())
