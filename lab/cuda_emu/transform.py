import re, sys
s = open(sys.argv[1]).read()
s = s.replace("extern __shared__ double iclv_dyn_shared[];", "static double iclv_dyn_shared[4096];")
pat = re.compile(r'(\w+(?:<\w+>)?)<<<(.*?)>>>\((.*?)\);', re.S)
def rep(m):
    cfg = [c.strip() for c in m.group(2).split(',')]
    while len(cfg) < 3: cfg.append('0')
    return 'EMU_LAUNCH((%s), (%s), (%s), %s(%s));' % (cfg[0], cfg[1], cfg[2], m.group(1), m.group(3))
s, n = pat.subn(rep, s)
sys.stderr.write("launches rewritten: %d\n" % n)
open(sys.argv[2], 'w').write(s)
