-- expect: global 'load'
return load("return 1")
