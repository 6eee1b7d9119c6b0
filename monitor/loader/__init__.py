"""Program loading as Linux's execve does it: ELF images (the program and its PT_INTERP interpreter), #! scripts,
and the initial stack with its auxv."""
