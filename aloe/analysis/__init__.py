"""Analyses of the data and of trained models.

- `counterfactual`: the counterfactual difficulty split (paper Appendix B);
- `families`: accuracy per question family (type, subtype and the events its program
  needs) beside the answer prior;
- `attention`: cross-modal, most-attended-object and slot-alignment pictures (Appendix C);
- `predicted_frames`: true, masked and predicted frames decoded by MONet (Appendix C);
- `figures`: the drawing helpers they share.
"""
