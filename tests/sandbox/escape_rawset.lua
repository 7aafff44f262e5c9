-- expect: global 'rawset'
rawset(kith, "x", 1)
