#!/usr/bin/env python3
"""Call the STORM manager's appliance API from inside an instance.

Usage: storm-api-client.py [ETC_DIR]   (default /etc/storm, where provisioning puts
tls/instance.key, tls/instance.crt, tls/ca.crt and manager, the API URL).
Prints this instance's configuration, reports "ready", and registers an MX record
for its own name, as JSON on stdout. Faults exit 1 with the fault on stderr.
"""
import json
import os
import ssl
import sys
import xmlrpc.client

etc = sys.argv[1] if len(sys.argv) > 1 else "/etc/storm"
with open(os.path.join(etc, "manager")) as f:
    url = f.read().strip()  # e.g. https://10.77.0.1:7723/RPC2

# Mutual TLS: trust only the STORM CA, present this instance's certificate,
# and check that the manager's certificate names the host in the URL.
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = True
ctx.load_verify_locations(os.path.join(etc, "tls", "ca.crt"))
ctx.load_cert_chain(os.path.join(etc, "tls", "instance.crt"), os.path.join(etc, "tls", "instance.key"))

api = xmlrpc.client.ServerProxy(url, context=ctx)
try:
    config = api.config.get()  # who we are comes from the certificate: no arguments
    api.status.report({"status": "ready", "message": "services started"})
    mx = api.mx.register({"priority": 10})  # MX for our own NAME.<domain>, pointing at us
except xmlrpc.client.Fault as fault:
    # faultString is JSON: {"code": "unauthorized", "message": ..., "hint": ...}
    print(f"fault {fault.faultCode}: {fault.faultString}", file=sys.stderr)
    sys.exit(1)

print(json.dumps({"config": config, "mx": mx}, indent=2, sort_keys=True))
