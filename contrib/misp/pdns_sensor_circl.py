"""MISP expansion module: query a pdns-sensor (or any CIRCL-compatible
passive DNS server) through its CIRCL surface, with a configurable URL.

MISP's bundled `circl_passivedns` module cannot be pointed at another
server (it only takes a username and password). This module is the same
idea with a `url` setting. Load it as a custom module:

    misp-modules -c /path/to/pdns-sensor/contrib/misp

then enable `pdns_sensor_circl` in MISP (Administration > Server Settings >
Plugin > Enrichment) and set `url` to `http://SENSOR:8081/pdns/query`, and
`username`/`password` to a `user:password` line of the sensor's
`--api-key-file` (leave them empty when the sensor runs without keys).
"""

import json

import pypdns
from pymisp import MISPAttribute, MISPEvent, MISPObject

misperrors = {"error": "Error"}
mispattributes = {
    "input": ["hostname", "domain", "ip-src", "ip-dst", "ip-src|port", "ip-dst|port"],
    "format": "misp_standard",
}
moduleinfo = {
    "version": "1.0",
    "author": "pdns-sensor",
    "description": "Passive DNS from a pdns-sensor (CIRCL-compatible API, configurable URL).",
    "module-type": ["expansion", "hover"],
    "name": "pdns-sensor passive DNS",
}
moduleconfig = ["url", "username", "password"]

DEFAULT_URL = "http://127.0.0.1:8081/pdns/query"


def lookup(value, config):
    """Returns the CIRCL records for one value, as PyPDNS parses them."""
    url = (config.get("url") or DEFAULT_URL).rstrip("/")
    auth = None
    if config.get("username") and config.get("password"):
        auth = (config["username"], config["password"])
    return pypdns.PyPDNS(url=url, basic_auth=auth).query(value)


def handler(q=False):
    if q is False:
        return False
    request = json.loads(q)
    attribute = request.get("attribute") or {}
    if not attribute.get("type") or not attribute.get("value") or "uuid" not in attribute:
        return {"error": "An attribute with a type, a value and a uuid is required."}
    if attribute["type"] not in mispattributes["input"]:
        return {"error": "Unsupported attribute type."}
    value = attribute["value"].split("|")[0]
    try:
        records = lookup(value, request.get("config") or {})
    except Exception as e:  # network errors, 401/403, bad answers
        return {"error": f"pdns-sensor query failed: {e}"}
    if not records:
        return {"error": "Not found"}
    event = MISPEvent()
    initial = MISPAttribute()
    initial.from_dict(**attribute)
    event.add_attribute(**initial)
    for record in records:
        obj = MISPObject("passive-dns")
        for key in ("rrname", "rrtype", "rdata", "bailiwick", "origin", "sensor_id"):
            if key in record:
                obj.add_attribute(key, type="text", value=str(record[key]))
        obj.add_attribute("count", type="counter", value=int(record["count"]))
        for key in ("time_first", "time_last"):
            obj.add_attribute(key, type="datetime", value=record[key])
        obj.add_reference(initial.uuid, "associated-to")
        event.add_object(obj)
    event = json.loads(event.to_json())
    return {"results": {key: event[key] for key in ("Attribute", "Object") if key in event}}


def introspection():
    return mispattributes


def version():
    moduleinfo["config"] = moduleconfig
    return moduleinfo
