-- expect: global 'io'
return io.open("/etc/passwd")
