-- expect: global 'print'
print("hello")
