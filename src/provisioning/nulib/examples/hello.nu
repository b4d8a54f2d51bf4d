# Example task module: `{"nushell": {"module": "examples/hello.nu", "function": "greet"}}`.

# Greet someone, reporting progress on the way; the result is a record.
export def greet [params: record] {
    let name = ($params | get -o name | default "world")
    print "PROGRESS: 10 starting"
    print $"hello, ($name)"
    print "PROGRESS: 100 done"
    print $"RESULT: ({greeting: $"hello, ($name)", params: $params} | to json -r)"
}
