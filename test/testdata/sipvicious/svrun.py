#!/usr/bin/python3
"""Run a Debian SIPVicious 0.3.3 tool (svmap, svwar, svcrack) from a chosen
loopback address, optionally disguised.

usage: svrun.py --bind IP [--disguise] TOOL [tool arguments...]

--bind IP   svwar and svcrack 0.3.3 accept -b but never pass it on (their
            main() does not give bindingip to the scanner object), so their
            socket binds to the wildcard and the kernel sends from 127.0.0.1.
            This wrapper replaces a wildcard bind() with IP, which makes the
            tool a distinct host on loopback without iptables or namespaces.
--disguise  what a real attacker does in one line of code: replace the
            User-Agent "friendly-scanner", the SIPVicious From tags (fixed
            3206210844, hex of "user:password\\x01digits") and the default
            Contact sip:123@1.1.1.1 with values an ordinary phone sends, so
            that the server's scanner fingerprints do not see it and its
            other defences (identical answers, failure counting, bans) are
            what is tested.
The tool's own code runs unchanged otherwise.
"""
import secrets
import socket
import sys

sys.path.insert(0, "/usr/share/sipvicious")


def main():
    args = sys.argv[1:]
    bind_ip, disguise = None, False
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--bind":
            bind_ip = args.pop(0)
        elif opt == "--disguise":
            disguise = True
        else:
            sys.exit("svrun.py: unknown option " + opt)
    if not args:
        sys.exit(__doc__)
    tool = args.pop(0)
    if tool not in ("svmap", "svwar", "svcrack"):
        sys.exit("svrun.py: unknown tool " + tool)

    if bind_ip:
        orig_bind = socket.socket.bind

        def bind(self, address):
            if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
                address = (bind_ip,) + tuple(address[1:])
            return orig_bind(self, address)

        socket.socket.bind = bind

    import importlib

    mod = importlib.import_module("sipvicious." + tool)
    if disguise:
        import inspect
        import re

        import binascii
        import inspect
        import re

        from sipvicious.libs import svhelper

        orig_make = mod.makeRequest
        sig = inspect.signature(orig_make)
        # Our random From tag -> what the tool's own tag carried (svwar: the
        # extension; svcrack: "user:password"); the tools read it back from
        # the tag echoed in responses (getTag, getCredentials).
        carried = {}

        def make_request(*a, **kw):
            ba = sig.bind(*a, **kw)
            ba.apply_defaults()
            kw = ba.arguments
            kw["useragent"] = "Zoiper rv2.10.19.6"
            orig = kw.get("localtag")
            if orig is not None:
                tag = secrets.token_hex(8)
                kw["localtag"] = tag.encode()
                try:
                    data = binascii.a2b_hex(orig.strip())
                    if data.find(b"\x01") > 0:
                        carried[tag] = data.split(b"\x01")[0]
                except (TypeError, ValueError, binascii.Error):
                    pass
            src = bind_ip or "127.0.0.1"
            kw["contact"] = "sip:%s@%s:%s" % (secrets.token_hex(3), src, kw.get("localport") or 5060)
            return orig_make(**kw)

        orig_get_tag = svhelper.getTag

        def get_tag(buff):
            m = re.search(r"(?m)^(From|f): .*?;\s*tag=([0-9a-f]+)", buff)
            if m and m.group(2) in carried:
                return carried[m.group(2)]
            return orig_get_tag(buff)

        mod.makeRequest = make_request
        svhelper.getTag = get_tag
        if hasattr(mod, "getTag"):
            mod.getTag = get_tag
    sys.argv = [tool] + args
    sys.exit(mod.main())


if __name__ == "__main__":
    main()
