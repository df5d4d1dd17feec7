"The PDF report: typesetting only (placeholder until the typst report lands)"
