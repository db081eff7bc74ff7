"""Two benchmark runs side by side: every ratio of their tables (from --rounds_file) and how far apart."""

from project.commands import compare_benchmarks

if __name__ == "__main__":
    compare_benchmarks()
