/** What `enarx config init` writes: every Enarx.toml option, explained, most commented out. */
export const CONFIG_TEMPLATE = `# Enarx.toml: how a Keep runs its WebAssembly workload (Enarx 0.7 format).
# Used only when given: enarx run --wasmcfgfile Enarx.toml MODULE (or ENARX_WASMCFGFILE).

# The Steward that certifies this Keep after checking its attestation evidence.
# Without it, the Keep makes itself a self-signed certificate.
#steward = "https://steward.example.com"

# Arguments after argv[0]. Command-line arguments to 'enarx run' come after these.
args = []

# Environment variables. 'enarx run --env K=V' overrides them. The Keep also sets
# FD_COUNT (how many [[files]] there are) and FD_NAMES (their names joined by ':').
[env]
#GREETING = "hello"

# Descriptors, numbered from 0 in this order. Kinds: null, stdin, stdout, stderr,
# listen, connect, dir. 'name' defaults to the kind (to 'host' for connect) and may not hold ':'.
[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

# A listening socket; the guest accepts connections on its descriptor. prot is "tls"
# (default; TLS ends inside the Keep, with its certificate) or "tcp". port defaults to
# 443 for tls and 80 for tcp; addr defaults to "::".
#[[files]]
#kind = "listen"
#name = "ingest"
#prot = "tls"
#addr = "::"
#port = 8443

# An outgoing connection, opened before the workload starts.
#[[files]]
#kind = "connect"
#prot = "tcp"
#host = "127.0.0.1"
#port = 23456

# A host directory the guest sees at 'name' (a preopen). Relative paths are relative to
# this file. readonly = true refuses every change below it.
#[[files]]
#kind = "dir"
#name = "/data"
#path = "data"
#readonly = false
`;
