-- expect: global 'os'
return os.execute("id")
