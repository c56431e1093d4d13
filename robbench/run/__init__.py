"""The engine: plan a suite into cells and units, run units on a backend, judge with the real
defense, write rows, and check the evaluation for signs of false robustness."""
