"""The Python example of examples/launch.json: km runs /usr/bin/python3 as the payload, debugpy inside it."""
import sys


def greet(name: str) -> str:
    message = f"Hello, {name}"          # a good line for a first breakpoint
    return message


if __name__ == "__main__":
    print(greet(" ".join(sys.argv[1:]) or "world"))
    for number, arg in enumerate(sys.argv[1:], 1):
        print(f"  arg {number}: {arg}")
