# Reference figures for package results' tests, computed outside Go.
#
#   apt-get install r-base-core r-cran-epitools   # Debian bookworm: R 4.2.2, epitools 0.5-10.1
#   Rscript testdata/reference.R
#
# Every figure hard-coded in stats_test.go and verdict_test.go is printed
# here with 17 significant digits. Variants come first in prop.test and
# t.test so that differences read variant − control.
library(epitools)
f <- function(x) sprintf("%.17g", x)
cat("qnorm(0.975) =", f(qnorm(0.975)), "\n")
rate <- function(name, xc, nc, xv, nv) {
  r <- prop.test(c(xv, xc), c(nv, nc), correct = FALSE)
  z <- (xv/nv - xc/nc) / sqrt(((xc+xv)/(nc+nv)) * (1 - (xc+xv)/(nc+nv)) * (1/nc + 1/nv))
  cat(sprintf("RATE %s control %d/%d variant %d/%d\n", name, xc, nc, xv, nv))
  cat("  X-squared", f(unname(r$statistic)), " sqrt", f(sqrt(unname(r$statistic))), " z(sign)", f(z), "\n")
  cat("  p", f(r$p.value), "\n")
  cat("  diff", f(xv/nv - xc/nc), " ci", f(r$conf.int[1]), f(r$conf.int[2]), "\n")
  if (xc > 0 && xv > 0) {
    m <- matrix(c(nc - xc, xc, nv - xv, xv), nrow = 2, byrow = TRUE)
    rr <- riskratio.wald(m)$measure[2, ]
    cat("  RR", f(rr[1]), " ci", f(rr[2]), f(rr[3]), "\n")
    cat("  lift", f(rr[1]-1), " ci", f(rr[2]-1), f(rr[3]-1), "\n")
  }
}
rate("a", 48, 1000, 70, 1000)
rate("b-large", 100000, 1000000, 101000, 1000000)
rate("c-unequal", 15, 250, 30, 310)
rate("d-control-zero", 0, 200, 9, 210)
rate("e-control-wins", 320, 2000, 270, 2010)
rate("f-control-all", 50, 50, 45, 50)
rate("g-huge-z", 1000, 1000000, 2000, 1000000)

means <- function(name, x, y) {
  r <- t.test(y, x, var.equal = FALSE)
  cat(sprintf("MEANS %s nc=%d nv=%d\n", name, length(x), length(y)))
  cat("  sum_c", f(sum(x)), " sumsq_c", f(sum(x^2)), " sum_v", f(sum(y)), " sumsq_v", f(sum(y^2)), "\n")
  cat("  mean_c", f(mean(x)), " var_c", f(var(x)), " mean_v", f(mean(y)), " var_v", f(var(y)), "\n")
  cat("  t", f(unname(r$statistic)), " df", f(unname(r$parameter)), " p", f(r$p.value), "\n")
  cat("  diff", f(mean(y) - mean(x)), " ci", f(r$conf.int[1]), f(r$conf.int[2]), "\n")
  if (mean(x) > 0 && mean(y) > 0) {
    se <- sqrt(var(x)/(length(x)*mean(x)^2) + var(y)/(length(y)*mean(y)^2))
    l <- log(mean(y)/mean(x))
    cat("  lift", f(mean(y)/mean(x) - 1), " ci", f(exp(l - qnorm(0.975)*se) - 1), f(exp(l + qnorm(0.975)*se) - 1), "\n")
  }
}
means("m1", c(12.1, 9.8, 11.4, 10.2, 13.5, 8.7, 10.9), c(14.2, 12.8, 15.1, 11.9, 13.3, 16.0, 12.5, 14.7))
means("m2-revenue", c(rep(0, 40), 5, 10, 20, 9.99, 49.5), c(rep(0, 35), 5, 15, 20, 9.99, 49.5, 30, 12))
i <- 1:1000000
means("m3-large", i %% 100, (i * 7) %% 101)
means("m4-offset", 1e6 + (i[1:1000] %% 3), 1e6 + (i[1:1200] %% 4) * 0.5)
means("m5-control-constant", rep(3, 20), c(2, 4, 3, 5, 3, 4, 6, 2, 3, 4))

srm <- function(name, obs, p) {
  r <- chisq.test(obs, p = p, rescale.p = TRUE)
  cat(sprintf("SRM %s obs=%s p=%s\n", name, paste(obs, collapse=","), paste(p, collapse=",")))
  cat("  X-squared", f(unname(r$statistic)), " df", unname(r$parameter), " p", f(r$p.value), "\n")
  cat("  expected", paste(f(r$expected), collapse=" "), "\n")
}
srm("even-ok", c(5050, 4950), c(1, 1))
srm("even-mismatch", c(50600, 49400), c(1, 1))
srm("three", c(3400, 3300, 3150), c(1, 1, 1))
srm("weighted", c(50310, 24820, 24870), c(2, 1, 1))
srm("large", c(1000000, 1002000), c(1, 1))
srm("large-mismatch", c(1000000, 1010000), c(1, 1))
srm("weighted-zero-excluded", c(50310, 24870), c(2, 1))
srm("boundary", c(10165, 9835), c(1,1))

cat("HOLM", paste(f(p.adjust(c(0.01, 0.04, 0.03), "holm")), collapse=" "), "\n")
cat("HOLM2", paste(f(p.adjust(c(0.02, 0.2, 0.001, 0.049), "holm")), collapse=" "), "\n")

# Bucket.Variance check and a lift that is undefined (control mean 0).
cat("var(1:4)", f(var(c(1, 2, 3, 4))), "\n")
r <- t.test(c(0, 1, 2, 3), c(0, 0, 0, 0), var.equal = FALSE)
cat("LIFTUNDEF t", f(r$statistic), "df", f(r$parameter), "p", f(r$p.value), "ci", f(r$conf.int), "\n")

# Verdict: three variants against control 500/10000, raw and Holm-adjusted.
multi <- function(name, v) {
  ps <- sapply(v, function(b) prop.test(c(b[1], 500), c(b[2], 10000), correct = FALSE)$p.value)
  cat(name, "raw", paste(f(ps), collapse = " "), "\n")
  cat(name, "holm", paste(f(p.adjust(ps, "holm")), collapse = " "), "\n")
}
multi("MULTI", list(c(560, 10000), c(610, 10000), c(480, 10000)))
multi("MULTI2", list(c(565, 10000), c(505, 10000), c(498, 10000)))
multi("MULTI3", list(c(400, 10000), c(610, 10000), c(505, 10000)))
